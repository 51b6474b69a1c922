"""The language of captions and prompts: Stable Diffusion's text encoders (CLIP in SD 1.x, OpenCLIP in SD 2.x,
both in SDXL) were trained on English; Chinese words reach them as rare byte pieces that carry little meaning.

Counting scripts is enough here (no language-detection library needed): Han characters against Latin letters.
"""

from __future__ import annotations

import re
from pathlib import Path

from .images import file_params, names
from .report import Finding, plural

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_LATIN = re.compile(r"[A-Za-z]")
LETTERS_PER_HAN = 2.5  # a 5-letter English word says about as much as 2 Chinese characters
ADVICE = "SD 1.x, 2.x and SDXL text encoders understand English only"


def mostly_chinese(text: str) -> bool:
    """True when more of ``text`` is written in Chinese (Han) characters than in Latin letters, weighting one
    character as 2.5 letters; a Latin trigger word in front of a Chinese caption does not change that."""
    han = len(_HAN.findall(text))
    return han > 0 and han * LETTERS_PER_HAN > len(_LATIN.findall(text))


def chinese_caption_findings(texts: dict[Path, str], root: Path) -> list[Finding]:
    """One warning naming the captions that are mostly Chinese."""
    chinese = [image for image, text in texts.items() if mostly_chinese(text)]
    if not chinese:
        return []
    example = texts[chinese[0]]
    message = (
        f"{len(chinese)} of {plural(len(texts), 'caption')} {_are(chinese)} mostly Chinese "
        f"(e.g. '{example}'), but {ADVICE}, so these words reach the model as near-meaningless tokens: "
        f"{names(chinese, root)}; "
        "translate them or write English tags (a trigger word can stay as it is)"
    )
    params = {**file_params(chinese, root), "total": len(texts), "example": example}
    return [Finding("warning", "Chinese caption", message, tuple(chinese), params=params)]


def chinese_prompt_warning(prompts: list[str]) -> str | None:
    """The sentence for sample prompts written mostly in Chinese (the trainer logs it), or None."""
    chinese = [prompt for prompt in prompts if mostly_chinese(prompt)]
    if not chinese:
        return None
    return (
        f"{plural(len(chinese), 'sample prompt')} {_are(chinese)} mostly Chinese (e.g. '{chinese[0]}'), but "
        f"{ADVICE}, so the samples would not show what the LoRA learned; write sample_prompts in English"
    )


def _are(items: list) -> str:
    return "is" if len(items) == 1 else "are"
