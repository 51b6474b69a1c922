"""The Jobs page's words: progress and why a job failed, in English and in Chinese for designers.

A failed stage names the family of its error (errors.py: ConfigError, DataError...); the Chinese page says
what kind of problem that is and what to look at, then gives the error's own sentence (English) as the
detail, since it names the exact file or setting.
"""

from __future__ import annotations

JOB_MESSAGES: dict[str, dict[str, str]] = {
    "jobs.progress": {"en": "Progress", "zh": "进度"},
    "jobs.done_of": {"en": "{done} of {total}", "zh": "已完成 {done} / {total}"},
    "jobs.eta": {"en": "about {time} left", "zh": "大约还要 {time}"},
    "failed.ConfigError": {
        "en": "{detail}",
        "zh": "设置或填写的内容有误，请检查后再试。英文原因：{detail}",
    },
    "failed.DataError": {
        "en": "{detail}",
        "zh": "素材（图片、描述或描述表）有问题，请按提示修改后再试。英文原因：{detail}",
    },
    "failed.ModelError": {
        "en": "{detail}",
        "zh": "底模找不到、打不开，或不是能用的模型，请换一个底模。英文原因：{detail}",
    },
    "failed.FormatError": {
        "en": "{detail}",
        "zh": "LoRA 或存档文件的格式读不出来，请换一个文件。英文原因：{detail}",
    },
    "failed.OutputError": {
        "en": "{detail}",
        "zh": "结果保存不了（位置不能写入，或同名文件已存在），请换个名称或位置。英文原因：{detail}",
    },
    "failed.TrainingError": {
        "en": "{detail}",
        "zh": "训练过程中出了问题（例如数值异常或磁盘已满），请按提示调整。英文原因：{detail}",
    },
    "failed.bug": {
        "en": "An unexpected error (please send the log to whoever maintains this tool): {detail}",
        "zh": "出现了意外错误，请把日志发给维护这个工具的同事。英文原因：{detail}",
    },
    "failed.unknown": {
        "en": "{detail}",
        "zh": "任务没有完成，日志最后一行（英文）：{detail}",
    },
    "failed.hint": {  # after a failure's sentence on the Chinese page: what to do (errors_zh.py)
        "en": " What to do: {hint}",
        "zh": " 怎么办：{hint}",
    },
    "failed.no_log": {
        "en": "The job ended without writing anything to its log.",
        "zh": "任务结束了，但日志里什么也没有写。",
    },
    "failed.doctor_findings": {
        "en": "The check found problems that must be fixed before training; they are marked on the images.",
        "zh": "检查发现了训练前必须处理的问题，已经标在对应的图片上。",
    },
}
