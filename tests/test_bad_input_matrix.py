"""The bad-input matrix: every case is one sentence and exit code 2 with output_dir untouched, or it works.

Runs the real `lora-scripts train` command in-process (typer's CliRunner) so 50 cases stay fast. A case
returns (config, needle) or (config, needle, command-line overrides). One test,
`test_whole_matrix_has_no_unexpected_error`, runs every case, refused and accepted, and fails on any exit
code 1 ("Unexpected error"), naming them all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from lora_scripts.cli import app


def _train(cfg: dict, tmp_path: Path, *extra: str, raw_yaml: str | None = None, encoding: str = "utf-8"):
    path = tmp_path / "config.yaml"
    path.write_text(raw_yaml if raw_yaml is not None else yaml.safe_dump(cfg, allow_unicode=True), encoding)
    return CliRunner().invoke(app, ["train", "--config", str(path), *extra])


def _png(path: Path, size=(96, 96), mode="RGB", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, **kw).save(path)
    return path


# --- cases that must be refused: each builds its own world and names what the sentence must mention ---


def _image_bytes(name: str, data: bytes):
    def make(cfg, tmp):
        (Path(cfg["train_data_dir"]) / name).write_bytes(data)
        return cfg, name

    return make


def _truncated(cfg, tmp):
    src = Path(cfg["train_data_dir"]) / "000_smartphone.png"
    img = Image.open(src).convert("RGB").resize((256, 256))
    img.save(tmp / "full.jpg", quality=95)
    (Path(cfg["train_data_dir"]) / "cut.jpg").write_bytes((tmp / "full.jpg").read_bytes()[:600])
    return cfg, "cut.jpg"


def _bomb(cfg, tmp):
    Image.new("1", (14000, 14000)).save(Path(cfg["train_data_dir"]) / "bomb.png")
    return cfg, "bomb.png"


def _csv(text: str, needle: str, encoding="utf-8"):
    def make(cfg, tmp):
        (Path(cfg["train_data_dir"]) / "metadata.csv").write_bytes(text.encode(encoding))
        return cfg, needle

    return make


def _sidecar(data: bytes):
    def make(cfg, tmp):
        (Path(cfg["train_data_dir"]) / "metadata.csv").unlink()
        (Path(cfg["train_data_dir"]) / "000_smartphone.txt").write_bytes(data)
        return {**cfg, "metadata_path": None}, "000_smartphone.txt"

    return make


def _metadata_is_folder(cfg, tmp):
    return {**cfg, "metadata_path": cfg["train_data_dir"]}, "is a folder"


def _override(item: str, needle: str):
    def make(cfg, tmp):
        return cfg, needle, (item,)

    return make


def _key(**values):
    def make(cfg, tmp):
        return {**cfg, **values}, next(iter(values))

    return make


def _yaml(text: str, needle: str, encoding: str = "utf-8"):
    def make(cfg, tmp):
        return (
            "RAW",
            text.replace("{data}", cfg["train_data_dir"]).replace("{model}", cfg["base_model"]),
            encoding,
        ), needle

    return make


def _model(kind: str):
    def make(cfg, tmp):
        target = tmp / "base.safetensors"
        real = Path(cfg["base_model"])
        if kind == "missing":
            target = tmp / "v1-5-pruned.safetensors"
        elif kind == "truncated":
            target.write_bytes(real.read_bytes()[: real.stat().st_size // 3])
        elif kind == "not_a_model":
            save_file({"weight": torch.zeros(3)}, target)
        elif kind == "sdxl":
            save_file(
                {
                    "conditioner.embedders.0.transformer.x": torch.zeros(1),
                    "model.diffusion_model.x": torch.zeros(1),
                },
                target,
            )
        elif kind == "lora":
            save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, target)
        elif kind == "pickle":
            target = tmp / "base.ckpt"
            torch.save({"state_dict": load_file(real)}, target)
        elif kind == "text":
            target.write_text("not a model")
        # an SGM file is read as SDXL: its sentence says so (the others: the file named is enough)
        needle = "incomplete or not an SDXL model" if kind == "sdxl" else target.name
        return {**cfg, "base_model": str(target)}, needle

    return make


def _data_dir(kind: str):
    def make(cfg, tmp):
        folder = tmp / kind
        folder.mkdir()
        if kind == "only_text":
            (folder / "notes.txt").write_text("hello")
        return {**cfg, "train_data_dir": str(folder), "metadata_path": None}, kind

    return make


def _output_is_file(cfg, tmp):
    (tmp / "out_file").write_text("x")
    return {**cfg, "output_dir": str(tmp / "out_file")}, "out_file"


REFUSED = {
    "corrupt_image": _image_bytes("noise.jpg", bytes(range(256)) * 8),
    "zero_byte_image": _image_bytes("empty.png", b""),
    "text_with_png_extension": _image_bytes("fake.png", b"just some words, not pixels"),
    "truncated_jpeg": _truncated,
    "decompression_bomb": _bomb,
    "csv_wrong_header": _csv("file,caption_text\n000_smartphone.png,neon\n", "filename,prompt"),
    "csv_missing_file": _csv("filename,prompt\nghost.png,neon\n", "ghost.png"),
    "csv_path_outside": _csv("filename,prompt\n../../etc/passwd,neon\n", "../../etc/passwd"),
    "csv_absolute_outside": _csv("filename,prompt\n/etc/passwd,neon\n", "/etc/passwd"),
    "csv_empty_file": _csv("", "empty"),
    "csv_conflicting_duplicate_rows": _csv(
        "filename,prompt\n000_smartphone.png,neon\n001_laptop.png,metal\n000_smartphone.png,chrome\n", "twice"
    ),
    "csv_unclosed_quote": _csv(
        'filename,prompt\n000_smartphone.png,"neon style, phone\n001_laptop.png,metal\n', "line 2"
    ),
    "csv_caption_spans_lines": _csv('filename,prompt\n000_smartphone.png,"neon\nstyle"\n', "to line 3"),
    "csv_header_only": _csv("filename,prompt\n", "only its header"),
    "csv_neither_utf8_nor_gbk": _csv("filename,prompt\n000_smartphone.png,neon\n", "UTF-8", "utf-16"),
    "caption_neither_utf8_nor_gbk": _sidecar("crème brûlée".encode("cp1252")),
    "metadata_path_missing": _key(metadata_path="/nowhere/metadata.csv"),
    "metadata_path_is_folder": _metadata_is_folder,
    "yaml_tabs": _yaml("base_model: {model}\n\ttrain_data_dir: {data}\n", "tab"),
    "yaml_list": _yaml("- base_model\n- train_data_dir\n", "key: value"),
    "yaml_empty": _yaml("", "empty"),
    "yaml_duplicate_key": _yaml(
        "base_model: {model}\ntrain_data_dir: {data}\nlearning_rate: 1e-4\nlearning_rate: 2e-4\n",
        "lines 3 and 4",
    ),
    "yaml_not_utf8": _yaml(
        "base_model: {model}\ntrain_data_dir: {data}\noutput_name: 霓虹\n", "UTF-8", "gbk"
    ),
    "yaml_huge_whole_number": _key(max_train_steps=1e30),
    "yaml_nan": _key(seed=float("nan")),
    "override_wrong_type": _override("learning_rate=fast", "command-line override 'learning_rate=fast'"),
    "override_unknown_key": _override("lerning_rate=1e-4", "did you mean 'learning_rate'"),
    "override_unreadable_value": _override("lora_rank={", "cannot be read"),
    "yaml_unknown_key": _key(lerning_rate=1e-4),
    "yaml_wrong_type": _key(learning_rate="fast"),
    "yaml_negative_epochs": _key(epochs=-1),
    "yaml_zero_batch": _key(batch_size=0),
    "yaml_zero_rank": _key(lora_rank=0),
    "yaml_bad_precision": _key(mixed_precision="fp8"),
    "yaml_resolution_not_multiple_of_8": _key(resolution=500),
    "yaml_bad_output_name": _key(output_name="a/b"),
    "model_missing": _model("missing"),
    "model_truncated": _model("truncated"),
    "model_not_a_model": _model("not_a_model"),
    "model_incomplete_sdxl": _model("sdxl"),
    "model_is_a_lora": _model("lora"),
    "model_pickle_refused": _model("pickle"),
    "model_text_file": _model("text"),
    "data_dir_missing": _key(train_data_dir="/nowhere/images"),
    "data_dir_empty": _data_dir("empty"),
    "data_dir_only_text": _data_dir("only_text"),
    "output_dir_is_a_file": _output_is_file,
    "resume_not_a_state": _key(resume="/nowhere/state"),
    "init_lora_missing": _key(init_lora="/nowhere/lora.safetensors"),
}


def _run_refused(case: str, cfg: dict, tmp_path: Path):
    made, needle, *extra = REFUSED[case](
        {**cfg, "metadata_path": str(Path(cfg["train_data_dir"]) / "metadata.csv")}, tmp_path
    )
    overrides = extra[0] if extra else ()
    if isinstance(made, tuple) and made[0] == "RAW":
        return _train(
            {}, tmp_path, *overrides, raw_yaml=made[1], encoding=made[2] if len(made) > 2 else "utf-8"
        ), needle
    return _train(made, tmp_path, *overrides), needle


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_sentence(case, base_config, tmp_path):
    result, needle = _run_refused(case, base_config, tmp_path)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(errors) == 1, result.output
    assert needle.lower() in errors[0].lower(), errors[0]
    out = Path(base_config["output_dir"])
    assert not out.exists() or case == "output_dir_is_a_file"


def test_not_enough_disk_space_is_found_before_training(base_config, tmp_path, monkeypatch):
    from lora_scripts.train import run

    monkeypatch.setattr(run, "MIN_FREE_BYTES", 2**62)  # more than any disk: the check must fire
    result = _train(base_config, tmp_path)
    assert result.exit_code == 2 and "MB free on the disk" in result.output
    assert not Path(base_config["output_dir"]).exists()


def test_doctor_runs_before_training(base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    shutil.copy(data / "000_smartphone.png", data / "copy_of_phone.png")
    with open(data / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("copy_of_phone.png,neon style, smartphone\n")
    result = _train(base_config, tmp_path, "--dry-run")
    assert result.exit_code == 0 and "duplicate" in result.output.lower()
    quiet = _train({**base_config, "doctor": "off"}, tmp_path, "--dry-run")
    assert quiet.exit_code == 0 and "duplicate" not in quiet.output.lower()


def test_doctor_warn_skips_broken_images_and_ghost_rows(base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    (data / "broken.png").write_bytes(b"not a png")
    with open(data / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("ghost.png,a ghost\n")
    strict = _train(base_config, tmp_path, "--dry-run")
    assert strict.exit_code == 2
    result = _train({**base_config, "doctor": "warn"}, tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "ghost.png" in result.output and "6 images" in result.output


def test_existing_lora_is_kept(base_config, tmp_path):
    out = Path(base_config["output_dir"])
    out.mkdir()
    (out / "test_lora.safetensors").write_bytes(b"precious")
    result = _train(base_config, tmp_path)
    assert result.exit_code == 2 and "already exists" in result.output
    assert (out / "test_lora.safetensors").read_bytes() == b"precious"


# --- shapes that are valid and must simply work ---


VALID = {
    "cmyk_jpeg": lambda d: Image.new("CMYK", (80, 96), (0, 200, 30, 10)).save(d / "cmyk.jpg"),
    "sixteen_bit_png": lambda d: Image.new("I;16", (96, 80), 40000).save(d / "grey16.png"),
    "palette_with_transparency": lambda d: Image.new("P", (96, 96), 3).save(d / "pal.png", transparency=3),
    "rgba_png": lambda d: _png(d / "rgba.png", mode="RGBA", color=(255, 0, 0, 100)),
    "exif_rotated_jpeg": lambda d: _exif_rotated(d / "rot.jpg"),
}


def _exif_rotated(path: Path) -> None:
    img = Image.new("RGB", (128, 64), (0, 255, 200))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    img.save(path, exif=exif)


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_images_are_accepted(case, base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    (data / "metadata.csv").unlink()
    VALID[case](data)
    result = _train(base_config, tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "7 images" in result.output


METADATA_SHAPES = {
    "utf8_bom": "\ufefffilename,prompt\n000_smartphone.png,neon style\n",
    "quoted_commas": 'filename,prompt\n000_smartphone.png,"neon style, metal, phone"\n',
    "unquoted_commas": "filename,prompt\n000_smartphone.png,neon, metal, phone\n",  # the seed's rows
    "extra_columns": "filename,prompt,score\n000_smartphone.png,neon style,5\n",  # extra columns ignored
}


@pytest.mark.parametrize("shape", sorted(METADATA_SHAPES))
def test_valid_metadata_shapes(shape, base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    (data / "metadata.csv").write_text(METADATA_SHAPES[shape], encoding="utf-8")
    result = _train({**base_config, "metadata_path": str(data / "metadata.csv")}, tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output


def _gbk_csv(data: Path) -> None:
    """Excel on Chinese Windows, "CSV (comma delimited)": GBK with Windows line ends."""
    rows = "".join(f"{png.name},霓虹风格，手机\r\n" for png in sorted(data.glob("*.png")))
    (data / "metadata.csv").write_bytes(("filename,prompt\r\n" + rows).encode("gbk"))


def _gbk_sidecars(data: Path) -> None:
    """Notepad on Chinese Windows, "ANSI": one GBK .txt per image."""
    (data / "metadata.csv").unlink()
    for i, png in enumerate(sorted(data.glob("*.png"))):
        png.with_suffix(".txt").write_bytes(f"霓虹风格，第 {i} 台设备".encode("gbk"))


CHINESE_WINDOWS = {
    "csv_gbk": (_gbk_csv, "Read 'metadata.csv' as GB18030 (Chinese Windows encoding)"),
    "caption_gbk": (_gbk_sidecars, "Read 6 caption files as GB18030 (Chinese Windows encoding)"),
}


@pytest.mark.parametrize("case", sorted(CHINESE_WINDOWS))
def test_chinese_windows_captions_are_read(case, base_config, tmp_path):
    make, said = CHINESE_WINDOWS[case]
    make(Path(base_config["train_data_dir"]))
    result = _train(base_config, tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count(said) == 1 and "6 captioned" in result.output, result.output


def _accepted() -> dict[str, Callable[[Path], object]]:
    """Every accepted case as a change to a fresh copy of the sample images."""

    def valid_image(draw):
        return lambda data: ((data / "metadata.csv").unlink(), draw(data))

    def shape(text):
        return lambda data: (data / "metadata.csv").write_text(text, encoding="utf-8")

    cases: dict[str, Callable[[Path], object]] = {f"valid_{k}": valid_image(v) for k, v in VALID.items()}
    cases.update({f"metadata_{k}": shape(v) for k, v in METADATA_SHAPES.items()})
    cases.update({k: make for k, (make, _) in CHINESE_WINDOWS.items()})
    return cases


def _first_error_line(output: str) -> str:
    lines = output.strip().splitlines() or ["(no output)"]
    return next((line for line in lines if "error" in line.lower()), lines[-1])


def test_whole_matrix_has_no_unexpected_error(base_config, tmp_path):
    """Every case above in one run, refused and accepted: exit code 1 is "Unexpected error", an exception that
    escaped as a bug whatever the case expected. All such cases are named at once."""
    source = Path(base_config["train_data_dir"])

    def fresh(case: str) -> tuple[Path, dict]:
        root = tmp_path / case
        shutil.copytree(source, root / "images")
        return root, {**base_config, "train_data_dir": str(root / "images"), "output_dir": str(root / "out")}

    results = {}
    for case in sorted(REFUSED):
        root, cfg = fresh(case)
        results[case] = _run_refused(case, cfg, root)[0]
    for case, make in sorted(_accepted().items()):
        root, cfg = fresh(case)
        make(Path(cfg["train_data_dir"]))
        results[case] = _train(cfg, root, "--dry-run")
    assert len(results) == len(REFUSED) + len(_accepted()) >= 55
    crashed = [
        f"{case}: exit {result.exit_code}: {_first_error_line(result.output)}"
        for case, result in results.items()
        if result.exit_code not in (0, 2) or "Unexpected error" in result.output
    ]
    assert not crashed, "\n".join(crashed)


def test_pickle_allowed_loads_tensors_only(base_config, tmp_path):
    ckpt = tmp_path / "base.ckpt"
    torch.save({"state_dict": load_file(base_config["base_model"])}, ckpt)
    result = _train(
        {**base_config, "base_model": str(ckpt), "allow_pickle": True, "max_train_steps": 1}, tmp_path
    )
    assert result.exit_code == 0, result.output
    assert (Path(base_config["output_dir"]) / "test_lora.safetensors").is_file()


def test_chinese_paths_with_spaces_work_everywhere(base_config, tmp_path):
    root = tmp_path / "设计 资料"
    data = root / "训练 图片"
    shutil.copytree(base_config["train_data_dir"], data)
    (data / "metadata.csv").unlink()
    for png in data.glob("*.png"):
        png.rename(data / f"霓虹 {png.name}")
    (data / "metadata.csv").write_text(
        "filename,prompt\n" + "".join(f"{p.name},霓虹风格, 手机\n" for p in sorted(data.glob("*.png"))),
        "utf-8",
    )
    model = root / "模型 文件" / "基础 模型.safetensors"
    model.parent.mkdir(parents=True)
    shutil.copy(base_config["base_model"], model)
    cfg = {
        **base_config,
        "base_model": str(model),
        "train_data_dir": str(data),
        "metadata_path": str(data / "metadata.csv"),
        "output_dir": str(root / "输出 目录"),
        "output_name": "科技 风格",
        "max_train_steps": 2,
    }
    result = _train(cfg, tmp_path)
    assert result.exit_code == 0, result.output
    saved = root / "输出 目录" / "科技 风格.safetensors"
    assert saved.is_file()
    from lora_scripts.save.kohya import read_lora_file

    _, meta = read_lora_file(str(saved))
    assert meta["ss_output_name"] == "科技 风格" and "霓虹风格" in meta["ss_tag_frequency"]
