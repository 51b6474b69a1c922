"""The batch page's words ("send to batch": the catalogue job), in English and in Chinese for designers, and
the batch CLI's sentences the page says in Chinese (api_batch.KNOWN picks them by the English sentence)."""

from __future__ import annotations

BATCH_MESSAGES: dict[str, dict[str, str]] = {
    "tab.batch": {"en": "4. Batch", "zh": "4. 批量出图"},
    "kind.batch": {"en": "Batch images", "zh": "批量出图"},
    "gen.to_batch": {"en": "Send to batch", "zh": "发送到批量出图"},
    "batch.intro": {
        "en": "One image set per row of a table (CSV). The prompt is a template: a column name in braces "
        "takes the row's value, e.g. {example}. The table needs an 'id' column; it names the files.",
        "zh": "按表格（CSV）的每一行各出一组图。描述词是模板：用大括号括起来的列名会换成这一行的内容，"
        "例如 {example}。表格必须有一列叫 id，用来给图片文件命名。",
    },
    "batch.from": {"en": "Taken from the generate page", "zh": "从出图页带过来的设置"},
    "batch.nothing_sent": {
        "en": "Nothing sent yet: set up an image on the generate page and click “Send to batch”.",
        "zh": "还没有带过来的设置：请先在出图页调好，再点“发送到批量出图”。",
    },
    "batch.template": {"en": "Prompt template", "zh": "描述词模板"},
    "batch.items": {"en": "Items table (CSV)", "zh": "商品表格（CSV）"},
    "batch.upload": {"en": "Upload a CSV", "zh": "上传 CSV 表格"},
    "batch.per_item": {"en": "Images per item", "zh": "每个商品出几张"},
    "batch.batch_size": {"en": "Images per pass", "zh": "每次一起画几张"},
    "batch.output": {"en": "Output folder name", "zh": "结果文件夹名称"},
    "batch.view": {"en": "View the job file (YAML)", "zh": "查看任务文件（YAML）"},
    "batch.start": {"en": "Start batch", "zh": "开始批量出图"},
    "batch.stop": {"en": "Stop (finishes this pass)", "zh": "停止（画完这一批再停）"},
    "batch.resume": {"en": "Resume (skips finished images)", "zh": "继续（已画好的会跳过）"},
    "batch.sheet": {"en": "Contact sheet (all images)", "zh": "总览页（全部图片）"},
    "batch.images_made": {"en": "{n} image(s) in the index", "zh": "已记录 {n} 张图"},
    "batch.failed_rows": {"en": "Images that failed", "zh": "没画成的图"},
    "batch.uploaded": {"en": "Table saved as {path}.", "zh": "表格已保存为 {path}。"},
    "batch.started": {"en": "Batch started.", "zh": "批量出图已开始。"},
    "batch.none_items": {"en": "— no table yet —", "zh": "—— 还没有表格 ——"},
    "batch.no_items": {
        "en": "Choose or upload an items table (CSV) first.",
        "zh": "请先选择或上传一个商品表格（CSV）。",
    },
    "batch.bad_output": {
        "en": "The output folder name '{name}' cannot be used. Use letters, digits, - and _ only.",
        "zh": "结果文件夹名称“{name}”不能用。请只用中英文字、数字、- 和 _。",
    },
    "batch.bad_csv_name": {
        "en": "'{name}' is not a usable CSV file name. Use a name ending in .csv, without folders.",
        "zh": "“{name}”不是能用的表格文件名。请用以 .csv 结尾、不带文件夹的名字。",
    },
    # the batch CLI's sentences (ConfigError / DataError) the page has words for
    "batch.no_column": {
        "en": "The prompt template uses the column '{column}', which the table does not have. Add the "
        "column to the CSV or fix the {{...}} in the template.",
        "zh": "描述词模板里用了“{column}”这一列，但表格里没有这一列。"
        "请在表格里加上这一列，或改正模板里的 {{…}}。",
    },
    "batch.no_id_column": {
        "en": "The table has no '{column}' column. Add an id column: it names each item's images.",
        "zh": "表格里没有“{column}”这一列。请加一列 id，用来给每个商品的图片命名。",
    },
    "batch.repeated_id": {
        "en": "The id '{id}' appears twice in the table. Make every id unique.",
        "zh": "表格里的 id“{id}”出现了两次。请让每一行的 id 都不一样。",
    },
    "batch.not_utf8": {
        "en": "The table is neither UTF-8 nor GBK (Chinese Excel) text. "
        "Save it as “CSV UTF-8” and upload it again.",
        "zh": "表格既不是 UTF-8 编码，也不是中文 Excel 的 GBK 编码。"
        "请在 Excel 里“另存为 CSV UTF-8”后重新上传。",
    },
    "batch.bad_placeholder": {
        "en": "'{{{column}}}' in the template is not a column name. Write {{column}} with the column's name.",
        "zh": "模板里的“{{{column}}}”不是列名。请写成 {{列名}}，括号里只写表格的列名。",
    },
}
