"""Train in-process and keep the trainer's UNet (with its peft layers) to compare a saved file against."""

from __future__ import annotations

import pytest

from lora_scripts.config import build_config
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training


@pytest.fixture()
def train_kept(monkeypatch):
    """train_kept(base_config, folder, **settings) -> (run result, the trained UNet)."""

    def train(base_config, tmp_path, **extra):
        kept, real = {}, run_module.Trainer

        class Keeping(real):
            def train(self):
                result = super().train()
                kept["unet"] = self.model.unet
                return result

        monkeypatch.setattr(run_module, "Trainer", Keeping)
        # alpha below the rank: every scale the clients apply is 1/2, so a missed one shows
        config = {**base_config, "save_precision": "float", "max_train_steps": 2, "learning_rate": 5e-2}
        config.update(lora_alpha=extra.get("lora_rank", 4) / 2, conv_alpha=1)
        result = run_training(build_config({**config, "output_dir": str(tmp_path / "out"), **extra}))
        monkeypatch.setattr(run_module, "Trainer", real)
        return result, kept["unet"]

    return train
