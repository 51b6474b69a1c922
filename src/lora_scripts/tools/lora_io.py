"""Read any kohya-format LoRA file by module name, and write one safely (never over a file unasked)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import FormatError, OutputError
from ..inject.dora import dora_notes
from ..inject.lora import LoraWeights
from ..inject.lyco import LycoWeights, lyco_kind, missing_lyco_parts
from ..save.atomic import atomic_save_safetensors, probe_writable
from ..save.kohya import DTYPES, module_weights, read_lora_file
from ..save.kohya_keys import DORA_SCALE, LYCO_PARTS, SUFFIX_ALPHA, SUFFIX_DOWN, SUFFIX_UP, group_modules
from ..save.lora_family import detect_lora_family
from ..save.metadata import add_hashes

log = logging.getLogger(__name__)
# Keys whose values describe the tensors of one particular file: recomputed for every file we write.
STALE_KEYS = ("sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256")


@dataclass
class LoraFile:
    path: Path
    modules: dict[str, LoraWeights | LycoWeights]  # kohya module name (lora_unet_..., lora_te_...) -> weights
    metadata: dict[str, str]
    other: list[str] = field(default_factory=list)  # tensors that are not plain LoRA (LoHa, LoKr, DoRA...)
    dtypes: set[str] = field(default_factory=set)
    size: int = 0
    notes: list[str] = field(default_factory=list)  # what a user should know before using it in a client

    def family(self) -> tuple[str | None, str]:
        """(base family or None, how it was found): save/lora_family's one detector."""
        return detect_lora_family({n: w.in_features for n, w in self.modules.items()}, self.metadata)


def read_lora(path: Path, strict: bool = True, dora: bool = False) -> LoraFile:
    """Read a kohya LoRA; `strict` refuses tensors that are not plain lora_down/lora_up/alpha, and DoRA
    modules unless `dora` (`lora merge`, which applies them against the base weight)."""
    if path.is_dir():
        raise FormatError(f"'{path}' is a folder, but this command needs a LoRA .safetensors file", _in(path))
    if not path.is_file():
        raise FormatError(f"LoRA file '{path}' does not exist", "Check the path")
    tensors, metadata = read_lora_file(str(path))
    grouped, other = group_modules(tensors)
    if strict and not dora and any(DORA_SCALE in group for group in grouped.values()):
        raise FormatError(
            f"'{path}' is a DoRA file; this tool works on plain LoRA/LoCon files (lora_down/lora_up), and "
            "a DoRA's change depends on the base weight it is applied to, so it has no low-rank form",
            "Bake it into the base model with `lora merge BASE FILE:WEIGHT -o merged.safetensors` (then "
            "`lora extract merged.safetensors BASE` gives a plain LoRA to resize or combine), or use it in "
            "generate as it is",
        )
    modules: dict[str, LoraWeights | LycoWeights] = {}
    lyco = []
    for name, group in grouped.items():
        if "down" in group and "up" in group:
            modules[name] = module_weights(name, group)
        elif not strict and _complete_lyco(group):
            modules[name] = module_weights(name, group)  # LoHa/LoKr: described, not merged or resized
        else:
            (lyco if strict and any(part in LYCO_PARTS for part in group) else other).extend(
                f"{name}.{part}" for part in group
            )
    if strict and lyco:
        kind = "LoHa" if any(".hada_" in k for k in lyco) else "LoKr"
        raise FormatError(
            f"'{path}' is a {kind} file; this tool works on plain LoRA/LoCon files (lora_down/lora_up)",
            "Use it in generate or as init_lora; to merge or resize, train a LoRA/LoCon instead",
        )
    if not modules:
        raise FormatError(
            f"'{path}' is not a LoRA file: it has no lora_down/lora_up tensors (first key: "
            f"'{next(iter(tensors), 'none')}')",
            "Pass a kohya-format LoRA .safetensors (as written by kohya sd-scripts, A1111 or this tool)",
        )
    if strict and other:
        raise FormatError(
            f"'{path}' has {len(other)} tensors that are not plain LoRA (first: '{sorted(other)[0]}'; "
            "LoHa/LoKr/DoRA files look like this)",
            "Only plain LoRA files (lora_down/lora_up/alpha) can be merged, resized or combined",
        )
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors.values()}
    lora = LoraFile(path, modules, metadata, sorted(other), dtypes, path.stat().st_size)
    lora.notes = dora_notes(path, modules.values())
    for note in lora.notes:
        log.warning(note)
    return lora


def _in(folder: Path) -> str:
    """What to give instead of a folder: one or two of the LoRA files in it, by name."""
    files = [str(f) for f in sorted(folder.glob("*.safetensors"))[:2]]
    if not files:
        return "It holds no .safetensors file; give the path of the LoRA file itself"
    return "Give one of the files in it, e.g. " + " or ".join(f"'{f}'" for f in files)


def _complete_lyco(group: dict[str, torch.Tensor]) -> bool:
    kind = lyco_kind(group)
    return kind is not None and not missing_lyco_parts(kind, set(group)) and "down" not in group


def kohya_tensors(modules: dict[str, LoraWeights], precision: str) -> dict[str, torch.Tensor]:
    """Module name -> weights, as the flat kohya state dict (the name is already the kohya name)."""
    dtype = DTYPES[precision]
    out: dict[str, torch.Tensor] = {}
    for name, w in sorted(modules.items()):
        out[name + SUFFIX_DOWN] = w.down.detach().to("cpu", dtype).contiguous()
        out[name + SUFFIX_UP] = w.up.detach().to("cpu", dtype).contiguous()
        out[name + SUFFIX_ALPHA] = torch.tensor(w.alpha, dtype=dtype)
    return out


def write_lora(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    """Write atomically with fresh hashes; all values of the metadata must be strings."""
    clean = {k: str(v) for k, v in metadata.items() if k not in STALE_KEYS}
    return atomic_save_safetensors(tensors, path, add_hashes(tensors, clean))


def check_output(path: Path, overwrite: bool, folder_output: bool = False) -> None:
    """Fail before any work if `path` exists (unless `overwrite`) or its folder cannot be written.

    Creates nothing: the nearest existing ancestor is probed with a temporary file.
    """
    if path.exists():
        if not overwrite:
            raise OutputError(
                f"Output '{path}' already exists", "Pass --overwrite to replace it, or choose another name"
            )
        if path.is_dir() != folder_output:
            kind = "a folder" if path.is_dir() else "a file"
            raise OutputError(f"Output '{path}' is {kind} of the wrong kind", "Choose another output name")
    if not folder_output and path.suffix.lower() != ".safetensors":
        raise OutputError(f"Output '{path}' must end in .safetensors", "Name the output file *.safetensors")
    try:
        probe_writable(path.parent)
    except OSError as exc:
        raise OutputError(
            f"Cannot write to the output folder '{path.parent}' ({exc.strerror or exc})",
            "Choose a folder you can write to",
        ) from exc


def auto_precision(loras: list[LoraFile], precision: str) -> str:
    """`auto`: the widest float type of the inputs (float32 > bf16 > fp16)."""
    if precision != "auto":
        return precision
    found = set().union(*(lora.dtypes for lora in loras))
    return "float" if "float32" in found else "bf16" if "bfloat16" in found else "fp16"
