"""The doctor's findings in Chinese, written for designers: one sentence per finding code (Finding.kind)
with the finding's parameters (counts, file names, the training size...), so the web UI shows the Chinese
page a Chinese sentence instead of translating the English one. A code not here (chat data) falls back to
the English sentence with a Chinese lead-in."""

from __future__ import annotations

FINDINGS_ZH: dict[str, str] = {
    "unreadable": (
        "{n} 张图片打不开（空文件、没下载完整或不是图片）：{files}。请重新导出为 PNG 或 JPG，或者删掉。"
    ),
    "smaller than resolution": (
        "{n} 张图片的短边小于训练尺寸 {resolution} 像素，训练时会被放大、变模糊：{files}。"
        "请换更大的图片，或调低训练尺寸。"
    ),
    "extreme aspect ratio": (
        "{n} 张图片太扁或太长（长边超过短边的 {ratio} 倍），训练时会被裁掉很多：{files}。"
        "请把图片裁到重要的部分。"
    ),
    "exact duplicate": "有 {groups} 组完全相同的图片（在训练里分量会加倍）：{files}。每组只留一张。",
    "near-duplicate": (
        "有 {groups} 组几乎一样的图片（在训练里分量会加倍）：{files}。除非是故意重复，每组只留最好的一张。"
    ),
    "cluttered": (
        "{n} 张图片背景太乱（主体周围线条多、颜色杂），这是 LoRA 学错东西最常见的原因：{files}。"
        "请看一下这些图，把最乱的裁掉背景或换掉。"
    ),
    "caption file": "有一个描述文件读不出来。英文原因：{detail}",
    "metadata.csv": "描述表（metadata.csv）读不出来。英文原因：{detail}",
    "metadata row": "描述表里有一行训练时会被拒绝。英文原因：{detail}",
    "header only": (
        "描述表“{file}”只有表头、没有内容，{n} 张图片会用空描述训练：{files}。"
        "请每张图写一行（“自动写描述”可以生成），或删掉这个文件，改用 .txt 描述文件。"
    ),
    "no caption": "{n} 张图片没有描述（会用空描述训练）：{files}。请用“自动写描述”生成，或手动填写。",
    "class caption": (
        "{n} 张图片没有描述，训练时用它们的类别词“{classes}”当描述（来自 class_tokens，或“数字_名字”"
        "文件夹的名字，和 kohya 一样）：{files}。如果想让 LoRA 学到更多细节，请给它们写上描述。"
    ),
    "caption without image": "有 {n} 条描述找不到对应的图片：{files}。请改正文件名，或删掉这些描述。",
    "empty caption": "{n} 张图片的描述是空的：{files}。请给每张图写上描述。",
    "identical caption": "{n} 张图片的描述一模一样（例如“{example}”）：{files}。请写上每张图不同的地方。",
    "caption over 75 tokens": (
        "{n} 条描述太长，超过了模型能读的 {window} 个词元，后面的词会被忽略：{files}。"
        "请缩短，或把关键词放在前面。"
    ),
    "no trigger word": (
        "{n} 条描述里没有触发词“{trigger}”：{files}。请加上（自动写描述时填上触发词就会自动加）。"
    ),
    "Chinese caption": (
        "{total} 条描述里有 {n} 条主要是中文（例如“{example}”）。SD 1.x、2.x 和 SDXL 只看得懂英文，"
        "这些中文对模型几乎没有意义：{files}。请翻译成英文或写英文标签（触发词可以不改）。"
    ),
    "encoding": "文件编码说明（英文）：{detail}",
    "switched off": (
        "文件夹“{folders}”的名字以 0_ 开头，表示重复 0 次，和 kohya 一样算作关闭，"
        "里面的 {n} 张图片不参与训练；想训练它们，请把开头的 0 改成重复次数，例如“1_名字”。"
    ),
    "repeats folder": (
        "“{folder}”本身是 kohya 的“数字_名字”文件夹，但重复次数和类别名只从训练文件夹的子文件夹名读取，"
        "现在它里面的图片按默认次数重复、也没有类别词；请把训练文件夹设成它的上一级文件夹。"
    ),
}
# each check's title (Finding.check) on the Chinese page and in the Chinese HTML report
CHECK_ZH: dict[str, str] = {
    "unreadable": "图片打不开",
    "unreadable row": "这一行读不出来",
    "caption file": "描述文件有问题",
    "metadata row": "描述表里的行有问题",
    "metadata.csv": "描述表（metadata.csv）有问题",
    "encoding": "文件编码",
    "Chinese caption": "描述是中文",
    "caption over 75 tokens": "描述太长",
    "cluttered": "画面太乱",
    "empty caption": "描述是空的",
    "no trigger word": "缺少触发词",
    "caption without image": "有描述但没有图",
    "duplicate": "重复的对话",
    "exact duplicate": "完全相同的图",
    "near-duplicate": "几乎一样的图",
    "role order": "对话顺序不对",
    "no reply": "最后一句没有回答",
    "too long": "对话太长",
    "lengths": "长度统计",
    "extreme aspect ratio": "图片太扁或太长",
    "identical caption": "描述一模一样",
    "no caption": "没有描述",
    "class caption": "用类别词当描述",
    "smaller than resolution": "图片比训练尺寸小",
    "switched off": "文件夹已关闭（0_）",
    "repeats folder": "训练文件夹选错了一层",
}

FALLBACK_ZH = "（暂无中文说明）{message}"


def files_zh(files: list[str], more: int) -> str:
    """ "a.png、b.png，另有 3 个" """
    return "、".join(files) + (f"，另有 {more} 个" if more else "")


def finding_zh(code: str, params: dict, message: str) -> str:
    """The Chinese sentence of a finding (as written by DoctorReport.write_json)."""
    fields = {**params, "files": files_zh(params.get("files", []), params.get("more", 0))}
    try:
        return FINDINGS_ZH[code].format(**fields)
    except KeyError:  # a code without a Chinese sentence, or a report written before codes existed
        return FALLBACK_ZH.format(message=message)


# the HTML report's own words (doctor/html.py has the English ones under the same keys)
REPORT_ZH: dict[str, str] = {
    "title": "素材检查",
    "summary": (
        "{folder}：共 {images} 张图片，{captioned} 张有描述（描述来自 {source}），训练尺寸 {resolution}。"
    ),
    "none": "没有发现问题",
    "start": "从最上面开始看。",
    "error": "训练前必须改",
    "warning": "最好改一下",
    "note": "说明",
    "more": "……另外还有 {n} 张。",
    "unreadable": "打不开",
    "legend": "数字是什么意思",
    "tags": "标签出现次数",
    "tag": "标签",
    "count": "图片数",
    "no caption": "（没有描述）",
    "empty caption": "（描述是空的）",
}
# what the numbers on the cards mean (the English lines are the checks' `explain`), by check; {names} are the
# finding's parameters
EXPLAINED_ZH: dict[str, str] = {
    "smaller than resolution": "宽x高 = 图片的宽和高（像素）；短边小于 {resolution}（训练尺寸）就太小了",
    "extreme aspect ratio": "宽x高 = 图片的宽和高（像素）；长边超过短边的 {ratio} 倍就算太扁或太长",
    "cluttered": (
        "杂乱度 = 图片四周背景有多乱（边缘外四分之一里的线条和颜色种类）：0 = 纯色背景（棚拍约 0.1），"
        "1 = 满屏杂乱（噪点约 0.95）；0.60 及以上算乱，会列为提醒"
    ),
    "caption over 75 tokens": (
        "词元 = CLIP 把描述切成的小段（常见单词一般一个词一段，生僻词和标点会多几段）；"
        "模型只读前 75 个词元，超过 75 就太长了"
    ),
}
_CLUTTER_WORDS = {"busy": "很乱", "plain": "干净", "some detail": "有些细节"}


def score_zh(score: str) -> str:
    """A card's number in Chinese: "clutter 0.72 (busy)" -> "杂乱度 0.72（很乱）",
    "92 tokens" -> "92 个词元"."""
    import re

    if m := re.fullmatch(r"clutter ([\d.]+) \((.+)\)", score):
        return f"杂乱度 {m[1]}（{_CLUTTER_WORDS.get(m[2], m[2])}）"
    if m := re.fullmatch(r"(\d+) tokens", score):
        return f"{m[1]} 个词元"
    return score
