"""`tags` backend: WD14-style ONNX taggers (model.onnx + selected_tags.csv) run through onnxruntime.

The preprocessing follows SmilingWolf's reference code: pad to a white square, resize to the model's input
size (read from the graph), BGR channel order, float32 pixels 0..255, NHWC.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ModelError
from .source import ModelRef, unavailable, wrong_kind

TAGS_FILE = "selected_tags.csv"
GENERAL, CHARACTER = 0, 4  # categories in selected_tags.csv (9 = rating, never written)
# Tags whose underscores are part of the face, not word separators (SmilingWolf's list).
KAOMOJI = {
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o",
    "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
}  # fmt: skip


def normalise_tag(tag: str) -> str:
    tag = tag.strip()
    return tag if tag in KAOMOJI else tag.replace("_", " ")


@dataclass(frozen=True)
class TagTable:
    names: list[str]
    categories: list[int]


class Tagger:
    def __init__(
        self,
        ref: ModelRef,
        general_threshold: float = 0.35,
        character_threshold: float = 0.85,
        blacklist: list[str] | None = None,
    ):
        model_path, tags_path = _model_files(ref)
        self.table = read_tag_table(tags_path)
        self.session = _session(model_path, ref)
        self.input_name, self.size, self.fixed_batch = _check_graph(self.session, len(self.table.names), ref)
        self.thresholds = {GENERAL: general_threshold, CHARACTER: character_threshold}
        self.blacklist = {normalise_tag(tag).lower() for tag in blacklist or []}

    def __call__(self, images: list[Image.Image]) -> list[str]:
        batch = np.stack([prepare(img, self.size) for img in images])
        if self.fixed_batch is not None:
            chunks = [batch[i : i + self.fixed_batch] for i in range(0, len(batch), self.fixed_batch)]
            probs = np.concatenate([self.session.run(None, {self.input_name: c})[0] for c in chunks])
        else:
            probs = self.session.run(None, {self.input_name: batch})[0]
        return [self._caption(row) for row in probs]

    def _caption(self, probs: np.ndarray) -> str:
        chosen = []
        for category in (CHARACTER, GENERAL):
            for index in np.argsort(-probs):
                if self.table.categories[index] != category or probs[index] < self.thresholds[category]:
                    continue
                tag = normalise_tag(self.table.names[index])
                if tag.lower() not in self.blacklist:
                    chosen.append(tag)
        return ", ".join(chosen)


def prepare(img: Image.Image, size: int) -> np.ndarray:
    side = max(img.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(img.convert("RGB"), ((side - img.width) // 2, (side - img.height) // 2))
    pixels = np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.ascontiguousarray(pixels[:, :, ::-1])  # RGB -> BGR


def read_tag_table(path: Path) -> TagTable:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        names = [row["name"] for row in rows]
        categories = [int(row["category"]) for row in rows]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"Tag list '{path}' is not a WD14 selected_tags.csv",
            "It needs the columns tag_id,name,category,count as the tagger's model page ships it",
        ) from exc
    return TagTable(names, categories)


def _model_files(ref: ModelRef) -> tuple[Path, Path]:
    if not ref.local:
        return _download(ref)
    folder = Path(ref.location)
    onnx_files = sorted(folder.glob("*.onnx"))
    if (folder / "model.onnx").is_file():
        onnx_files = [folder / "model.onnx"]
    if len(onnx_files) != 1 or not (folder / TAGS_FILE).is_file():
        found = "transformers model" if (folder / "config.json").is_file() else "folder without them"
        raise wrong_kind(ref, found)
    return onnx_files[0], folder / TAGS_FILE


def _download(ref: ModelRef) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download

    try:
        model = hf_hub_download(ref.location, "model.onnx", local_files_only=ref.cache_only)
        tags = hf_hub_download(ref.location, TAGS_FILE, local_files_only=ref.cache_only)
    except Exception as exc:  # offline, unknown repo, missing file: all mean "not available"
        raise unavailable(ref, exc) from exc
    return Path(model), Path(tags)


def _session(model_path: Path, ref: ModelRef):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for foreign or damaged files
        raise unavailable(ref, exc) from exc


def _check_graph(session, num_tags: int, ref: ModelRef) -> tuple[str, int, int | None]:
    """Input name, square size and fixed batch size (None = any) of an NHWC tagger graph."""
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    shape, out_shape = list(inp.shape), list(out.shape)
    ok = len(shape) == 4 and shape[3] == 3 and isinstance(shape[1], int) and shape[1] == shape[2]
    outputs = out_shape[-1] if out_shape else None
    ok = ok and len(out_shape) == 2 and (not isinstance(outputs, int) or outputs == num_tags)
    if not ok:
        raise ModelError(
            f"Model '{ref.name}' takes {shape} and gives {out_shape}, but a WD14 tagger takes "
            f"[batch, size, size, 3] images and gives [batch, {num_tags}] tag scores",
            f"Use the model.onnx that came with this {TAGS_FILE}",
        )
    fixed = shape[0] if isinstance(shape[0], int) else None
    return inp.name, shape[1], fixed
