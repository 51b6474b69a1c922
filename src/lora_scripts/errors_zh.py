"""What to do about the common errors, in Chinese for designers: the CLI prints it under the English sentence
when the user's language is Chinese (language.py), and the web UI's Chinese page shows it with a failed job.

An error's English sentence names the exact file, key or value, so it stays; this adds the "what to do" by
the sentence's pattern (the README's error table, whose third column is this table). A sentence matching no
pattern gets no hint, never a wrong one.
"""

from __future__ import annotations

import re

HINTS_ZH: tuple[tuple[str, str], ...] = (
    # the config file and the command line
    (  # before "has value ..., but it must be": kohya's `--n blurry` in a sample prompt
        r"has kohya's per-prompt option --",
        "删掉样图提示词里的 --n、--s 等参数，"
        "改用 sample_negative_prompt、sample_steps 等配置项（对每张样图都生效）",
    ),
    (r"has value .*, but it must be a (number|float)", "填数字，例如 `2e-4`"),
    (r"must be a whole number written with digits only", "直接写数字，不要写成 1e30"),
    (r"has value .*, but it must be", "把这一项改成英文说明里允许的值"),
    (r"^The command-line override '", "改正命令后面的 `项=值`"),
    (r"is set twice in", "同一项写了两次，删掉其中一行"),
    (
        r"^Unknown key '",
        "改正拼写（英文提示里有建议的写法）；训练的配置项见 docs/config.md，批量出图的见 docs/catalogue.md",
    ),
    (r"^Key '.*' is missing in", "配置里缺少这一项：按英文提示补上"),
    (r"^Config file .* is not UTF-8 text", "用记事本「另存为」，编码选 UTF-8"),
    (r"^Config file .* is not valid YAML", "用空格缩进，每行一个 `项: 值`"),
    (  # kohya's dataset TOML (dataset_config) holds what our keys cannot say
        r"\[\[datasets\]\]|subsets? in |(training|regularisation) subset",
        "按英文提示改 dataset_config 指向的数据集 TOML，或删掉它，直接写 train_data_dir 等数据项",
    ),
    (
        r"^(Dataset config|Config file) .* is not valid TOML",
        "TOML 写法有误：按英文提示改正那一行（文字要加引号）",
    ),
    (  # a kohya key (training config or dataset TOML) that is refused here, with the key to use instead
        r"^Key '[^']*'( of the \w+ subset)? in ",
        "按英文提示改这一项或删掉它（kohya 选项和本工具写法的对照表见 docs/config.md）",
    ),
    # the training images and their captions
    (r"found in reg_data_dir", "把 `reg_data_dir` 指向放正则化图片的文件夹，不用正则化图片就删掉这一项"),
    (
        r"^Training folder '.*' does not exist|No images \(jpg",
        "检查文件夹路径，换成里面有 jpg/png/webp 图片的文件夹",
    ),
    (r"cannot be read \(it is damaged or incomplete", "重新导出为 PNG/JPG，或删掉这张图"),
    (r"opens a quote \(\"\) that is never closed", '在那一行描述末尾补上 `"`'),
    (
        r"has only its header line and no rows",
        "每张图加一行标注（可用 `lora-scripts label`），或删掉该文件",
    ),
    (r"is a folder, but it must be the metadata\.csv file", "填 metadata.csv 文件本身"),
    (r"is neither UTF-8 nor GB18030", "另存为 UTF-8（Excel 里选「CSV UTF-8」）"),
    (r"has the header '.*' but needs the columns", "改正第一行表头"),
    (r"uses ';' between columns", "另存为逗号分隔的 CSV（Excel 里选「CSV UTF-8（逗号分隔）」）"),
    (
        r"is in a folder switched off by its 0_ name",
        "文件夹名以 0_ 开头表示关闭：把 0 改成重复次数，例如 1_名字",
    ),
    (r"^Metadata file '.*' lists '", "改正这一行，或把图片放进来"),
    (r"^The dataset doctor found a problem", "用 `lora-scripts doctor 文件夹` 查看，或设 `doctor: warn`"),
    (r"^output_dir '.*' is inside train_data_dir", "输出文件夹不要放在训练图片文件夹里"),
    # the base model
    (  # a VAE in place of the base model's (config `vae`, generate --vae, a batch job's vae)
        r"^VAE '.*'( in .*)? does not exist",  # a batch job's: "VAE 'v.safetensors' in job.yaml ..."
        "检查 VAE 的路径（配置里的 `vae` 或 `--vae`）；不需要单独的 VAE 就删掉这一项，用底模自带的",
    ),
    (
        r"^VAE '.*' is not a \.safetensors file|^VAE folder '.*' has no config\.json",
        "VAE 要填 .safetensors 文件（WebUI 的 models/VAE 里那种），或 diffusers 格式的 VAE 文件夹",
    ),
    (r"^VAE '.*' is a pickle file", "改用 .safetensors 格式的 VAE（下载页一般都提供）"),
    (r"^VAE (folder )?'.*' cannot be (read|loaded)", "VAE 文件损坏或不是 VAE：重新下载"),
    (
        r"^VAE '.*' does not fit the base model's VAE",
        "换成和底模同一系列的 VAE：SD 1.x/2.x 底模用 SD 的 VAE，SDXL 底模用 SDXL 的 VAE",
    ),
    (
        r"is not on this machine, and the model hub at",
        "设置 `HF_ENDPOINT` 使用镜像，或在别处下载模型文件夹后用 `--model ./models/名称`",
    ),
    (r"^Base model '.*' does not exist|is not a readable \.safetensors file", "检查路径；重新下载"),
    (r"is a pickle checkpoint", "改用 `.safetensors` 版本的模型"),
    (r"is a LoRA file, not a base model", "`base_model` 要填底模文件，不是 LoRA 文件"),
    (r"device is 'cuda' but no CUDA GPU is visible", "设 `device: auto` 或 `cpu`"),
    # the output and a run
    (
        r"already exists and would be overwritten",
        "移走旧文件、换个 `output_name` 并放进它自己的 `output_dir`，或设 `overwrite: true`",
    ),
    (
        r"holds the training files of another LoRA",
        "每个 LoRA 用自己的输出文件夹：把 `output_dir` 改成英文提示里的新文件夹",
    ),
    (
        r"^Another training \(process",
        "另一个训练正在用这个文件夹：等它结束、停掉它，或换个 `output_dir`",
    ),
    (r"MB free on the disk of|^The disk of '.*' is full", "清理磁盘空间，然后用 `resume: auto` 继续"),
    (
        r"found training states in .* from another run",
        "这是另一次训练的存档：去掉 `resume` 重新开始，或把设置改回去",
    ),
    (r"was made with LoRA rank", "用原来的 rank 继续，或重新开始"),
    (r"holds Python objects other than tensors", "不要使用来路不明的训练存档"),
    (r"^The loss became (NaN|inf)", "调低 `learning_rate`；用 `bf16` 代替 `fp16`"),
    (r"^Out of memory at step .* one image", "降低 `resolution`；用 fp16/bf16；开 gradient checkpointing"),
    (  # the chat route's (one conversation at a time)
        r"^Out of memory at step",
        "降低 `max_seq_len`；设 `load_in_4bit: true`；用 bf16；开 gradient checkpointing",
    ),
    (r"leaving none to train on", "留出验证的图片太多，调小 `validation_split`"),
    (r"^lora_rank is \d+ but init_lora", "删掉 `lora_rank`（会从文件里读取）"),
    # the batch job (`lora-scripts batch`): a started output_dir is never mixed with other images
    (
        r"^The base model '.*' is not the one '.*' was started with",
        "底模换了（路径和大小相同，权重不同）：换回原来的底模，或加 `--new` 重新开始"
        "（旧结果移到 replaced-时间 文件夹），或换个 `output_dir`",
    ),
    (
        r"^The job changed since '",
        "任务设置和开始时不一样：改回去，或加 `--new` 重新开始（旧结果移到 replaced-时间 文件夹），"
        "或换个 `output_dir`",
    ),
    (
        r"^The item '.*' changed since its images were made",
        "这一行的内容变了：给它一个新的 id，或加 `--new` 重新开始，或换个 `output_dir`",
    ),
    (
        r"^'[^']+' in .* must be .*, not ",
        "把这一项改成英文提示要求的值（例如 `images_per_item: 2`，数字不要写成文字）",
    ),
    (
        r"^The catalogue '.*' (has no rows|is empty)",
        "目录表里没有数据：在表头下面每个设备型号写一行（Excel 导出前检查数据没有丢）",
    ),
    (
        r"^overrides key '.*' matches no value of column",
        "overrides 下的这一项要和目录表里 `by` 那一列的值一字不差：按英文提示改正拼写（大小写、空格也算）",
    ),
    # the batch job on a Ray cluster
    (
        r"^A Ray worker died \d+ times",
        "某个 Ray 进程反复崩溃（多半是内存或显存不够）：调小 `batch_size` 或图片尺寸，再运行同样的命令接着做",
    ),
    (
        r"^A Ray worker could not start",
        "集群的每台机器都要装好 lora-scripts，"
        "并在相同路径读到任务文件、目录表、底模和 LoRA 文件夹（放在共享文件夹里）",
    ),
    (r"^--ray needs an address", "写 `--ray local`（在本机启动集群）、`--ray auto` 或集群地址"),
    (r"^--resolution \S+ is not valid", "填训练配置里的 resolution：8 的倍数，64 到 4096 之间，例如 512"),
    # LoRA files and the tools
    (r"is not a weight", "写成 `文件:权重`，例如 `style.safetensors:0.7`"),
    (r"^No LoRA named '", "用列出来的名字之一"),
    (
        r"is a folder, but this command needs a LoRA \.safetensors file",
        "填 LoRA 文件本身（.safetensors），不是它所在的文件夹",
    ),
    (r"is a LoRA for .*, but the base model is", "换成对应底模的 LoRA"),
)
_COMPILED = tuple((re.compile(pattern), hint) for pattern, hint in HINTS_ZH)


def hint_zh(message: str) -> str | None:
    """The Chinese "what to do" for an error's English sentence, or None when none is written for it."""
    for pattern, hint in _COMPILED:
        if pattern.search(message):
            return hint
    return None
