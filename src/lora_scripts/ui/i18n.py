"""Every text the UI shows, in English and in Simplified Chinese written for designers.

`t(key, lang, **fields)` formats one message. An unknown key or language raises (KeyError / ValueError), so a
typo in a page fails its test instead of showing a raw key to a user.
"""

from __future__ import annotations

import string

from ..language import normalise_lang
from .batch_text import BATCH_MESSAGES
from .job_text import JOB_MESSAGES
from .page_text import PAGE_MESSAGES

MESSAGES: dict[str, dict[str, str]] = {
    # workspace confinement (ui/workspace.py)
    "workspace.outside": {
        "en": "The path '{path}' is outside the workspace {root}. Choose a file or folder inside the "
        "workspace.",
        "zh": "“{path}”不在工作区 {root} 里面。请选择工作区里的文件或文件夹。",
    },
    "workspace.nul": {
        "en": "The path '{path}' contains a NUL character. Type the path again without it.",
        "zh": "路径“{path}”里有看不见的非法字符（NUL）。请重新输入这个路径。",
    },
    "workspace.drive": {
        "en": "The path '{path}' names another drive or network share. Choose a file or folder inside the "
        "workspace.",
        "zh": "“{path}”指向别的磁盘或网络共享。请选择工作区里的文件或文件夹。",
    },
    "workspace.empty": {
        "en": "No path was given. Choose a file or folder inside the workspace.",
        "zh": "还没有填写路径。请选择工作区里的文件或文件夹。",
    },
    "workspace.not_folder": {
        "en": "The workspace {root} exists but is not a folder. Start the UI with --workspace pointing at a "
        "folder.",
        "zh": "工作区 {root} 不是文件夹。启动界面时请用 --workspace 指定一个文件夹。",
    },
    # workspace areas
    "area.datasets": {"en": "Datasets", "zh": "素材集"},
    "area.configs": {"en": "Training settings", "zh": "训练设置"},
    "area.loras": {"en": "LoRA library", "zh": "LoRA 模型库"},
    "area.outputs": {"en": "Results", "zh": "生成结果"},
    # form groups
    "group.basic": {"en": "Basic", "zh": "常用设置"},
    "group.advanced": {"en": "Advanced", "zh": "高级设置"},
    # labels of the basic form fields (advanced ones show their config key and English help for now)
    "field.base_model": {"en": "Base model", "zh": "底模（基础模型）"},
    "field.train_data_dir": {"en": "Training images folder", "zh": "训练图片文件夹"},
    "field.output_name": {"en": "LoRA name", "zh": "LoRA 名称"},
    "field.output_dir": {"en": "Output folder", "zh": "保存位置"},
    "field.resolution": {"en": "Resolution (pixels)", "zh": "训练尺寸（像素）"},
    "field.lora_rank": {"en": "LoRA size (rank)", "zh": "LoRA 容量（rank）"},
    "field.lora_alpha": {"en": "LoRA strength (alpha)", "zh": "LoRA 强度（alpha）"},
    "field.epochs": {"en": "Rounds over the images (epochs)", "zh": "学习轮数"},
    "field.max_train_steps": {"en": "Stop after steps", "zh": "最多训练步数"},
    "field.learning_rate": {"en": "Learning rate", "zh": "学习速度（学习率）"},
    "field.batch_size": {"en": "Images per step", "zh": "每步图片数"},
    "field.trigger_word": {"en": "Trigger word", "zh": "触发词"},
    "field.sample_prompts": {"en": "Preview prompts", "zh": "预览图描述词"},
    # form validation (ui/forms.py), by kind of problem
    "form.required": {"en": "This field is required.", "zh": "这一项必须填写。"},
    "form.unknown_key": {
        "en": "'{key}' is not a setting this tool knows.",
        "zh": "“{key}”不是本工具的设置项。",
    },
    "form.number": {"en": "Enter a number, such as 0.0001.", "zh": "请填写数字，例如 0.0001。"},
    "form.whole_number": {"en": "Enter a whole number, such as 512.", "zh": "请填写整数，例如 512。"},
    "form.yes_no": {"en": "Choose yes or no.", "zh": "请选择“是”或“否”。"},
    "form.choice": {"en": "Choose one of: {choices}.", "zh": "请从这些选项中选择一个：{choices}。"},
    "form.min": {"en": "Must be at least {limit}.", "zh": "不能小于 {limit}。"},
    "form.min_exclusive": {"en": "Must be more than {limit}.", "zh": "必须大于 {limit}。"},
    "form.max": {"en": "Must be at most {limit}.", "zh": "不能大于 {limit}。"},
    "form.max_exclusive": {"en": "Must be less than {limit}.", "zh": "必须小于 {limit}。"},
    "form.multiple_of": {"en": "Must be a multiple of {step}.", "zh": "必须是 {step} 的倍数。"},
    "form.file_name": {
        "en": 'Use a name without / \\ : * ? " < > |.',
        "zh": '名称里不能有 / \\ : * ? " < > | 这些符号。',
    },
    "form.other": {"en": "{detail}", "zh": "填写有误：{detail}"},
    # presets (ui/presets.py)
    "preset.style": {"en": "Style (a look or art direction)", "zh": "风格（画风、视觉调性）"},
    "preset.product": {
        "en": "Product (one object, its logo and details)",
        "zh": "产品（单个物品、标志和细节）",
    },
    "preset.character": {"en": "Character (a person or mascot)", "zh": "角色（人物或吉祥物）"},
    "preset.small_gpu": {
        "en": "Small GPU (8 GB, SD 1.5 models): slower, fits in less memory",
        "zh": "小显存（8 GB，SD 1.5 模型）：速度慢一些，但显存够用",
    },
    "preset.sdxl_8gb": {
        "en": "SDXL on an 8 GB graphics card: slower, but it fits",
        "zh": "SDXL 模型 + 8 GB 显卡：速度慢一些，但显存够用",
    },
}

MESSAGES.update(PAGE_MESSAGES)  # the page's own words (ui/page_text.py)
MESSAGES.update(JOB_MESSAGES)  # progress and failures on the Jobs page (ui/job_text.py)
MESSAGES.update(BATCH_MESSAGES)  # the batch page (ui/batch_text.py)


def t(key: str, lang: str = "en", /, **fields: object) -> str:
    """The message `key` in `lang`, with `{placeholders}` filled from `fields` (a missing one raises
    KeyError)."""
    entry = MESSAGES[key]  # KeyError on a typo: loud on purpose
    return entry[normalise_lang(lang)].format(**fields)


def placeholders(text: str) -> set[str]:
    """The `{names}` a message expects."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
