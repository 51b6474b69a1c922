"""kohya sd-scripts' dataset TOML (`dataset_config`; the schema of its library/config_util.py) -> our keys.

kohya reads [general], [[datasets]] and their [[datasets.subsets]]; a subset's value wins over its dataset's,
which wins over [general], which wins over the training config (config_util's BlueprintGenerator). Here one
dataset with one training subset and at most one regularisation subset (is_reg) becomes train_data_dir and
reg_data_dir, and an option that comes out the same for every subset becomes our key of that name: the kohya
names go on to config/kohya.py's table as a training config's would (caption_prefix is refused there, ...).
What our keys cannot say is refused in one sentence that names the file and the key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .kohya_rules import Given, Refused, off, shown
from .read import read_json, read_toml_tables
from .root import key_to_section

# kohya's DATASET_ASCENDABLE_SCHEMA (set in [general] or a [[datasets]]), resize_interpolation aside
DATASET_KEYS = (
    "batch_size",
    "bucket_no_upscale",
    "bucket_reso_steps",
    "enable_bucket",
    "max_bucket_reso",
    "min_bucket_reso",
    "network_multiplier",
    "resolution",
    "validation_seed",
    "validation_split",
)
# the subset options, which [general] and a dataset may set for their subsets too -> kohya's default
SUBSET_DEFAULTS: dict[str, Any] = {
    "cache_info": False,
    "caption_dropout_every_n_epochs": 0,
    "caption_dropout_rate": 0.0,
    "caption_extension": ".caption",
    "caption_prefix": None,
    "caption_separator": ",",
    "caption_suffix": None,
    "caption_tag_dropout_rate": 0.0,
    "class_tokens": None,
    "color_aug": False,
    "custom_attributes": None,
    "enable_wildcard": False,
    "face_crop_aug_range": None,
    "flip_aug": False,
    "keep_tokens": 0,
    "keep_tokens_separator": "",
    "num_repeats": 1,
    "random_crop": False,
    "resize_interpolation": None,
    "secondary_separator": None,
    "shuffle_caption": False,
    "token_warmup_min": 1,
    "token_warmup_step": 0,
}
SUBSET_ONLY = ("image_dir", "is_reg", "alpha_mask", "metadata_file", "conditioning_data_dir")
_ALLOWED = {
    "[general]": (*DATASET_KEYS, *SUBSET_DEFAULTS),
    "[[datasets]]": (*DATASET_KEYS, *SUBSET_DEFAULTS, "subsets"),
    "[[datasets.subsets]]": (*SUBSET_DEFAULTS, *SUBSET_ONLY),
}
_ARGPARSE_NAMES = {
    "num_repeats": ("num_repeats", "dataset_repeats"),
    "caption_extension": ("caption_extention",),
}
_MISSING = object()

DOC = (
    "kohya's dataset TOML ([general], one [[datasets]], its [[datasets.subsets]]) is read: the path as "
    "kohya reads it, from the current folder, else beside the training config; its keys win over the "
    "training config's, as in kohya (a logged note names each one overridden); see the dataset_config "
    "table below"
)
# each TOML key -> what it becomes here (docs/config.md's dataset_config table)
TOML_DOC: dict[str, str] = {
    "image_dir": "a subset's folder: the one training subset's is `train_data_dir`, the one regularisation "
    "subset's (is_reg = true) `reg_data_dir`; a second of either is refused (N_name subfolders of one "
    "folder repeat N times here); read from the current folder, as in kohya (subfolders are read too here)",
    "num_repeats": "the training subset's is `num_repeats`, the regularisation subset's `reg_num_repeats`",
    "class_tokens": "kohya's caption for a subset's images without a caption file: the training "
    "subset's is `class_tokens`, the regularisation subset's `reg_class_tokens`",
    "metadata_file": "refused: kohya's fine-tuning JSON is not read here; write a metadata.csv in image_dir",
    "resolution, batch_size, enable_bucket, min/max_bucket_reso, bucket_reso_steps, bucket_no_upscale, "
    "validation_split": "our keys of the same names (resolution: one number or a square [w, h])",
    "network_multiplier": "refused unless 1: the LoRA trains at multiplier 1 here",
    "custom_attributes": "refused: read only by kohya's custom code",
    "shuffle_caption, keep_tokens, keep_tokens_separator, caption_extension, flip_aug, color_aug, "
    "random_crop, caption_dropout_rate, caption_tag_dropout_rate": "our keys of the same names when every "
    "subset comes out with the same value (a subset that leaves it out takes the training config's, else "
    "kohya's default); differing values are refused",
    "the other kohya subset options (caption_prefix, face_crop_aug_range, cache_info, ...)": "read as in a "
    "training config (the table above)",
    "[[datasets]] (a second), other keys": "refused in one sentence naming the file and key",
}


@dataclass(frozen=True)
class DatasetToml:
    source: str  # the file as found, for messages
    keys: dict[str, Any]  # kohya key (mostly ours) -> value, read on by config/kohya.py's table
    note: str


def read_dataset_config(value: Any, given: Given, config_dir: Path | None) -> DatasetToml:
    """The keys kohya's dataset TOML at ``value`` sets for the training config ``given``. Refused (completing
    "Key 'dataset_config' in cfg ...") when the file is not found; ConfigError for what is in it."""
    path = _find(value, config_dir)
    name = str(path)
    data = read_json(path) if path.suffix.lower() == ".json" else read_toml_tables(path, "Dataset config")
    _check_keys(data, name)
    dataset = _one_dataset(data, name)
    train, reg = _train_and_reg(dataset["subsets"], name)
    levels = {"training": (train, dataset, data.get("general", {}))}
    if reg is not None:
        levels["regularisation"] = (reg, dataset, data.get("general", {}))
    keys: dict[str, Any] = {"train_data_dir": train["image_dir"], "reg_data_dir": reg and reg["image_dir"]}
    for key in DATASET_KEYS:
        found = _lookup(key, levels["training"][1:])
        if found is not _MISSING:
            keys[key] = found
    _network_multiplier(keys.pop("network_multiplier", 1.0), name)
    keys.update(_class_tokens(levels, name))
    if any(_lookup("custom_attributes", chain) is not _MISSING for chain in levels.values()):
        raise ConfigError(
            f"Key 'custom_attributes' in {name} is read only by kohya's custom code", "Remove it"
        )
    for key in SUBSET_DEFAULTS:
        if key == "num_repeats" and reg is not None:  # each folder's own: reg_num_repeats for the reg one
            keys.update(_repeats_of_each(levels, given))
        elif key not in ("class_tokens", "custom_attributes"):
            keys.update(_same_for_all(key, levels, given, name))
    reg_text = f", reg_data_dir '{reg['image_dir']}'" if reg else ""
    return DatasetToml(name, keys, f"read {name}: train_data_dir '{train['image_dir']}'{reg_text}")


def _find(value: Any, config_dir: Path | None) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise Refused(
            f"is {shown(value)}, but it must be the path of kohya's dataset .toml file",
            'Write it like dataset_config = "dataset.toml"',
        )
    path = Path(str(value).strip())
    tried = [path] if path.is_absolute() or config_dir is None else [path, config_dir / path]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        where = " or beside the config" if len(tried) > 1 else ""
        raise Refused(
            f"is {shown(str(value))}, but no such file is in the current folder{where}",
            "Check the path of the dataset TOML",
        )
    if found.suffix.lower() not in (".toml", ".json"):
        raise Refused(f"is {shown(str(value))}, not a .toml or .json file", "Give kohya's dataset .toml file")
    return found


def _check_keys(data: dict[str, Any], name: str) -> None:
    for key in data:
        if key not in ("general", "datasets"):
            raise _unknown(key, "the top level", ("general", "datasets"), name)
    general = data.get("general", {})
    _table(general, "[general]", name)
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list):
        raise ConfigError(f"'datasets' in {name} must be [[datasets]] tables", "Write each as [[datasets]]")
    for dataset in datasets:
        _table(dataset, "[[datasets]]", name)
        subsets = dataset.get("subsets", [])
        if not isinstance(subsets, list):
            raise ConfigError(
                f"'subsets' in {name} must be [[datasets.subsets]] tables",
                "Write each as [[datasets.subsets]]",
            )
        for subset in subsets:
            _table(subset, "[[datasets.subsets]]", name)


def _table(table: Any, where: str, name: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} in {name} must be a table of key = value lines, not {shown(table)}")
    for key in table:
        if key not in _ALLOWED[where]:
            raise _unknown(key, where, _ALLOWED[where], name)


def _unknown(key: str, where: str, allowed: tuple[str, ...], name: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"Did you mean '{close[0]}'?" if close else "See kohya's docs/config_README-en.md for its keys"
    return ConfigError(f"Unknown key '{key}' in {where} of {name}", hint)


def _one_dataset(data: dict[str, Any], name: str) -> dict[str, Any]:
    datasets = data.get("datasets", [])
    if len(datasets) != 1:
        raise ConfigError(
            f"{name} has {len(datasets) or 'no'} [[datasets]], but one dataset is trained here",
            "Keep one [[datasets]] (with a subset whose image_dir is the training folder), and train another "
            "in a run of its own",
        )
    return datasets[0]


def _train_and_reg(subsets: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    for subset in subsets:
        if "metadata_file" in subset:
            raise ConfigError(
                f"Key 'metadata_file' in {name} names kohya's fine-tuning JSON, which is not read here",
                "Write its captions as a metadata.csv (filename,prompt) or .txt files in image_dir, and "
                "remove metadata_file",
            )
        folder = subset.get("image_dir")
        if not isinstance(folder, str) or not folder.strip():
            raise ConfigError(
                f"A subset in {name} has no image_dir", 'Add image_dir = "...", the folder of its images'
            )
        if not isinstance(subset.get("is_reg", False), bool):
            raise ConfigError(f"Key 'is_reg' in {name} is {shown(subset['is_reg'])}", "Write true or false")
    train = [s for s in subsets if not s.get("is_reg")]
    reg = [s for s in subsets if s.get("is_reg")]
    if len(train) != 1 or len(reg) > 1:
        kind, which, key = (
            ("training", train, "train_data_dir")
            if len(train) != 1
            else ("regularisation", reg, "reg_data_dir")
        )
        folders = ", ".join(f"'{s['image_dir']}'" for s in which) or "none"
        raise ConfigError(
            f"{name} has {len(which) or 'no'} {kind} subsets ({folders}), but here one folder is {key}",
            "Give exactly one, and put several folders into it as N_name subfolders (each repeats N times)",
        )
    return train[0], reg[0] if reg else None


def _lookup(key: str, levels: tuple[dict[str, Any], ...]) -> Any:
    """kohya's search_value: the first level (subset, dataset, general) that sets the key (not to None)."""
    return next((level[key] for level in levels if level.get(key) is not None), _MISSING)


def _fallback(key: str, given: Given) -> Any:
    """What a subset that leaves ``key`` out gets: the training config's value, else kohya's default."""
    names = (key, *_ARGPARSE_NAMES.get(key, ()))
    return next((given[n] for n in names if given.get(n) is not None), SUBSET_DEFAULTS[key])


def _same_for_all(key: str, levels: dict[str, tuple], given: Given, name: str) -> dict[str, Any]:
    """{key: value} when the subsets that set it (and those that do not) come out the same; kohya names that
    are not ours go on with the first value asked for (their rule refuses it or notes it)."""
    if all(_lookup(key, chain) is _MISSING for chain in levels.values()):
        return {}
    values = _per_subset(key, levels, given)
    if all(v == values["training"] for v in values.values()):
        return {key: values["training"]}
    if key not in key_to_section():
        return {key: next((v for v in values.values() if not off(v)), values["training"])}
    train, reg = values["training"], values["regularisation"]
    hint = f"Give both subsets the same {key}, or set it once in [general]"
    raise ConfigError(
        f"Key '{key}' in {name} comes out {shown(train)} for the training subset but {shown(reg)} for the "
        "regularisation subset (a subset that leaves it out takes the training config's, else kohya's "
        "default), and one value counts for both here",
        hint,
    )


def _repeats_of_each(levels: dict[str, tuple], given: Given) -> dict[str, Any]:
    """num_repeats of the training subset and reg_num_repeats of the regularisation one (kohya repeats each
    subset's images by its own num_repeats; a subset that leaves it out takes the training config's)."""
    values = _per_subset("num_repeats", levels, given)
    return {"num_repeats": values["training"], "reg_num_repeats": values["regularisation"]}


def _per_subset(key: str, levels: dict[str, tuple], given: Given) -> dict[str, Any]:
    """{subset kind: the value ``key`` comes out with for it}: its own level's, else the fallback."""
    found = {kind: _lookup(key, chain) for kind, chain in levels.items()}
    return {kind: _fallback(key, given) if v is _MISSING else v for kind, v in found.items()}


def _class_tokens(levels: dict[str, tuple], name: str) -> dict[str, Any]:
    """kohya captions a subset's images without a caption file with its class_tokens: the training
    subset's becomes class_tokens, the regularisation subset's reg_class_tokens."""
    keys = {}
    for kind, chain in levels.items():
        tokens = _lookup("class_tokens", chain)
        if tokens is not _MISSING and tokens is not None:
            keys["reg_class_tokens" if kind == "regularisation" else "class_tokens"] = tokens
    return keys


def _network_multiplier(value: Any, name: str) -> None:
    if value != 1:
        raise ConfigError(
            f"Key 'network_multiplier' in {name} is {shown(value)}, but the LoRA trains at multiplier 1 here",
            "Remove it",
        )
