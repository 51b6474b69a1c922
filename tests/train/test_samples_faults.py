"""A sample that cannot be made never costs the run: it is logged and skipped, and the LoRA is saved.
Bugs are not hidden: errors that are not sampling failures still stop the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from PIL import Image

from lora_scripts.config import SampleConfig
from lora_scripts.train.samples import Sampler, _log_to_tensorboard


def test_unwritable_samples_folder_skips_samples_and_saves_the_lora(base_config, tmp_path, cli):
    out = Path(base_config["output_dir"])
    out.mkdir(parents=True)
    (out / "samples").write_text("a file where the samples folder would go", encoding="utf-8")
    cfg = {
        **base_config,
        "sample_prompts": ["neon style, smartphone"],
        "sample_every_n_steps": 2,
        "sample_steps": 2,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    done = cli("train", "--config", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "test_lora.safetensors").is_file()
    assert "Samples at step 2 were skipped (FileExistsError" in done.stderr
    assert "training continues" in done.stderr and "Traceback" not in done.stderr


class _Pipe:
    """Stands in for the model family (not under test here): two modules whose train/eval modes the
    Sampler must put back, and a render() that fails with `error`."""

    def __init__(self, error: BaseException):
        self.unet, self.text_encoder, self.error = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), error

    def adapter_modules(self):
        return {"unet": self.unet, "te": self.text_encoder}

    def render(self, requests):
        raise self.error


def _sampler(tmp_path: Path) -> Sampler:
    cfg = SampleConfig(sample_prompts=["a phone"], sample_every_n_steps=1, sample_steps=1)
    return Sampler(cfg, 64, tmp_path / "samples")


@pytest.fixture()
def accelerator():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_out_of_memory_while_sampling_is_logged_and_skipped(tmp_path, accelerator, caplog):
    pipe = _Pipe(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    pipe.unet.train()
    pipe.text_encoder.eval()
    with caplog.at_level(logging.WARNING, logger="lora_scripts"):
        assert _sampler(tmp_path).render(pipe, 7, accelerator) == []
    assert "Samples at step 7 were skipped (OutOfMemoryError: CUDA out of memory" in caplog.text
    assert pipe.unet.training and not pipe.text_encoder.training  # train/eval modes are put back


def test_a_bug_while_sampling_is_not_hidden(tmp_path, accelerator):
    with pytest.raises(TypeError, match="a bug"):
        _sampler(tmp_path).render(_Pipe(TypeError("a bug")), 7, accelerator)


def test_no_tracker_is_not_an_error(accelerator):
    _log_to_tensorboard(accelerator, [Image.new("RGB", (8, 8))], 1)  # no trackers: nothing to do


def test_samples_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    AcceleratorState._reset_state(reset_partial_state=True)
    acc = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path / "logs"))
    acc.init_trackers("run")
    _log_to_tensorboard(acc, [Image.new("RGB", (8, 8), "red")], 3)
    acc.end_training()
    AcceleratorState._reset_state(reset_partial_state=True)
    events = EventAccumulator(str(next((tmp_path / "logs").rglob("events.out.*")).parent))
    events.Reload()
    assert "samples/00" in events.Tags()["images"]
