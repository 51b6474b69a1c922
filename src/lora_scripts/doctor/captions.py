"""Caption checks: missing captions, captions without images, empty, identical, too long, trigger word."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data.captions import class_caption, read_metadata_csv, split_tags
from ..data.matching import image_caption, match_csv
from ..data.textfile import EncodingNotes
from ..errors import DataError
from .images import file_params, names
from .language import chinese_caption_findings
from .report import Finding, plural

CLIP_WINDOW = 75  # tokens SD's text encoder sees (77 minus start and end)
TOKENS_EXPLAINED = (
    "tokens = the pieces CLIP's tokenizer cuts a caption into (about one per common word, more for rare "
    f"words and punctuation); CLIP reads the first {CLIP_WINDOW} tokens, so more than {CLIP_WINDOW} is "
    "too long"
)


@dataclass
class Captions:
    source: str
    by_image: dict[Path, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)  # csv rows or .txt files that match no image
    orphan_level: str = "warning"
    problem: Finding | None = None  # the caption file itself is unreadable
    refused: list[str] = field(default_factory=list)  # csv rows training refuses (outside the folder...)
    header_only: Path | None = None  # the metadata.csv that has a header but no rows
    encodings: EncodingNotes = field(default_factory=EncodingNotes)  # files read as GB18030
    by_class: list[Path] = field(default_factory=list)  # no caption: class_tokens or `N_name` folder's name


def load_captions(
    root: Path,
    images: list[Path],
    metadata: Path | None,
    extension: str,
    class_tokens: str | None = None,
    left_out: list[Path] | None = None,
) -> Captions:
    """Captions the trainer would use: metadata.csv rows matched by data/'s own matcher, for images
    without a (non-empty) row ``<stem><extension>`` files, and for images with neither data/'s class caption
    (``class_tokens``, else the `N_name` folder's class). The captions of ``left_out`` images (in `0_name`
    folders) are passed over, not called orphans."""
    left_out = left_out or []
    extension = extension if extension.startswith(".") else "." + extension
    csv_path = metadata or root / "metadata.csv"
    with_csv = metadata is not None or csv_path.is_file()
    notes = EncodingNotes()
    if with_csv:
        captions = _from_csv(csv_path, root, images, notes, left_out)
        if captions.problem is not None:
            return captions
    else:
        captions = Captions(f"{extension} files", encodings=notes)
        stems = {image.with_suffix("") for image in images + left_out}
        captions.orphans = [
            p.relative_to(root).as_posix()
            for p in sorted(root.rglob(f"*{extension}"))
            if p.with_suffix("") not in stems
        ]
    from_csv = dict(captions.by_image)
    try:
        for image in images:
            text = image_caption(image, from_csv, extension, notes)
            if text is None and (text := class_caption(image, root, class_tokens) or None):
                captions.by_class.append(image)
            if text is not None:
                captions.by_image[image] = text
    except DataError as err:
        captions.problem = Finding("error", "caption file", err.message, params={"detail": err.message})
    from_files = {image: text for image, text in captions.by_image.items() if image not in captions.by_class}
    if with_csv and any(text != from_csv.get(image) for image, text in from_files.items()):
        captions.source += f" and {extension} files"
    return captions


def _from_csv(
    csv_path: Path, root: Path, images: list[Path], notes: EncodingNotes, left_out: list[Path]
) -> Captions:
    captions = Captions(f"'{csv_path.name}'", orphan_level="error", encodings=notes)
    try:
        rows = read_metadata_csv(csv_path, notes)
    except DataError as err:
        captions.problem = Finding("error", "metadata.csv", err.message, params={"detail": err.message})
        return captions
    if not rows:
        captions.header_only = csv_path
    match = match_csv(rows, csv_path, root, images, left_out)
    captions.by_image = match.captions
    captions.orphans = [err.row for err in match.missing]
    captions.refused = [err.message for err in match.refused]
    return captions


def caption_findings(
    captions: Captions, images: list[Path], root: Path, trigger: str | None
) -> list[Finding]:
    findings = [captions.problem] if captions.problem else []
    findings += [
        Finding("error", "metadata row", message, params={"detail": message}) for message in captions.refused
    ]
    missing = [image for image in images if image not in captions.by_image]
    if missing and captions.header_only is not None:  # like a caption file naming missing images: stop
        findings.append(
            Finding(
                "error",
                "no caption",
                f"Metadata file '{captions.header_only}' has only its header line and no rows, so "
                f"{plural(len(missing), 'image')} would train with an empty caption: {names(missing, root)}; "
                "add one row per image (`lora-scripts label` writes them) or delete the file to use .txt "
                "caption files",
                tuple(missing),
                params={**file_params(missing, root), "file": captions.header_only.name},
                code="header only",
            )
        )
    elif missing:
        findings.append(
            Finding(
                "warning",
                "no caption",
                f"No caption in {captions.source} for {plural(len(missing), 'image')} (they train with an "
                f"empty one): {names(missing, root)}; run `lora-scripts label` or write them",
                tuple(missing),
                params={**file_params(missing, root), "source": captions.source},
            )
        )
    if captions.orphans:
        shown = ", ".join(captions.orphans[:5]) + (" ..." if len(captions.orphans) > 5 else "")
        findings.append(
            Finding(
                captions.orphan_level,
                "caption without image",
                f"Captions in {captions.source} for images that are not in the folder "
                f"({len(captions.orphans)}): {shown}; fix the file names or delete those captions",
                params={
                    "n": len(captions.orphans),
                    "files": captions.orphans[:5],
                    "more": max(0, len(captions.orphans) - 5),
                    "source": captions.source,
                },
            )
        )
    findings += _class_finding(captions, root)
    texts = {image: text for image, text in captions.by_image.items() if image in set(images)}
    findings += _text_findings(texts, root, trigger, set(captions.by_class))
    return findings


def _class_finding(captions: Captions, root: Path) -> list[Finding]:
    """Images without any caption that train with their class, as kohya's DreamBooth-style folders do."""
    if not captions.by_class:
        return []
    classes = sorted({captions.by_image[image] for image in captions.by_class})
    shown = ", ".join(f"'{text}'" for text in classes[:3]) + (" ..." if len(classes) > 3 else "")
    images = captions.by_class
    return [
        Finding(
            "note",
            "class caption",
            f"{plural(len(images), 'image')} without a caption train with the caption of their class {shown} "
            f"(class_tokens, else the `N_name` folder's name, as kohya): {names(images, root)}; write "
            "captions if the LoRA should learn more than that word",
            tuple(images),
            params={**file_params(images, root), "classes": "、".join(classes[:3])},
        )
    ]


def _text_findings(
    texts: dict[Path, str], root: Path, trigger: str | None, by_class: set[Path]
) -> list[Finding]:
    findings = []
    empty = [image for image, text in texts.items() if not text.strip()]
    if empty:
        message = (
            f"Empty caption for {plural(len(empty), 'image')}: {names(empty, root)}; describe each image"
        )
        findings.append(
            Finding("warning", "empty caption", message, tuple(empty), params=file_params(empty, root))
        )
    findings += chinese_caption_findings(texts, root)
    written = {image: text for image, text in texts.items() if image not in by_class}  # a class: meant alike
    counts = Counter(text for text in written.values() if text.strip())
    shared = [(text, n) for text, n in counts.most_common() if n > 1]
    if shared:
        same = tuple(image for image, text in written.items() if text in dict(shared))
        examples = "; ".join(f"'{text}' ({n} images)" for text, n in shared[:3])
        findings.append(
            Finding(
                "warning",
                "identical caption",
                f"Identical captions on {plural(len(same), 'image')}, e.g. {examples}; "
                "add the words that make each image different",
                same,
                params={**file_params(list(same), root), "example": shared[0][0]},
            )
        )
    findings += _long_findings(texts, root)
    if trigger:
        word = re.compile(rf"(?<!\w){re.escape(trigger)}(?!\w)", re.IGNORECASE)
        lacking = [image for image, text in texts.items() if not word.search(text)]
        if lacking:
            message = (
                f"Trigger word '{trigger}' missing from {plural(len(lacking), 'caption')}: "
                f"{names(lacking, root)}; "
                f"add it (`lora-scripts label --trigger {trigger}` does this for new images)"
            )
            params = {**file_params(lacking, root), "trigger": trigger}
            findings.append(Finding("warning", "no trigger word", message, tuple(lacking), params=params))
    return findings


def _long_findings(texts: dict[Path, str], root: Path) -> list[Finding]:
    if not texts:
        return []
    from ..models.tokenizer import clip_tokenizer

    images = list(texts)
    ids = clip_tokenizer()([texts[i] for i in images], add_special_tokens=False)["input_ids"]
    counts = {image: len(row) for image, row in zip(images, ids, strict=True)}
    long = [image for image in images if counts[image] > CLIP_WINDOW]
    if not long:
        return []
    detail = {image: f"{counts[image]} tokens" for image in long}
    message = (
        f"Too long for CLIP's {CLIP_WINDOW}-token window (later words are ignored): "
        f"{plural(len(long), 'caption')}, {names(long, root, detail=detail)}; "
        "shorten them or put the key words first"
    )
    scores = tuple((image, detail[image]) for image in long)
    params = {**file_params(long, root), "window": CLIP_WINDOW}
    return [
        Finding("warning", "caption over 75 tokens", message, tuple(long), TOKENS_EXPLAINED, scores, params)
    ]


def tag_frequency(texts: list[str]) -> Counter:
    """How often each tag appears (lower-case; split on , and on the Chinese ， and 、 as training splits),
    as kohya's ss_tag_frequency counts."""
    return Counter(tag.lower() for text in texts for tag in split_tags(text))
