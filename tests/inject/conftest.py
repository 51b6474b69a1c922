"""Train in-process and keep the trainer's UNet (with its peft layers) to compare a saved file against."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

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


@pytest.fixture()
def draws_and_continues(cli, tiny_model, train_kept):
    """check(base_config, tmp_path, lora_path, **network): `generate` draws another image with the file at
    weight 1 than at 0, and init_lora continues from it to the same tensors (learning rate ~0)."""

    def check(base_config, tmp_path, lora_path, **network):
        out = tmp_path / "generated"
        args = ["generate", "neon phone", "-m", str(tiny_model["single_file"]), "-l", str(lora_path.parent)]
        args += ["--lora", lora_path.stem, "--weights", "0,1", "--seeds", "3", "-o", str(out)]
        done = cli(*args, "--steps", "2", "-W", "64", "-H", "64", "--no-grid")
        assert done.returncode == 0, done.stderr[-2000:]
        base, styled = [np.asarray(Image.open(p)) for p in sorted(out.glob("0*.png"))]
        assert not np.array_equal(base, styled)
        again = train_kept(
            base_config, tmp_path / "v2", init_lora=str(lora_path), learning_rate=1e-12, **network
        )
        a, b = load_file(lora_path), load_file(again[0].lora_path)
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    return check


@pytest.fixture(scope="session")
def a1111_delta():
    """a1111_delta(tensors of one module without its name, weight shape) -> the weight change A1111 applies.
    Written from A1111's extensions-builtin/Lora (network_hada.py, network_lokr.py, network.py calc_scale),
    independently of lora_scripts: LoHa (w1a @ w1b) * (w2a @ w2b); LoKr kron(w1, w2) with w1/w2 full or a @ b,
    a 4-d w2 taking w1 as [.., .., 1, 1]; reshaped to the layer's weight; scaled by alpha / dim, dim the first
    size of hada_w1_b, or of lokr_w1_b / lokr_w2_b (w2 wins), and 1 without one."""

    def delta(t: dict[str, torch.Tensor], weight_shape: tuple[int, ...]) -> torch.Tensor:
        t = {k: v.double() for k, v in t.items()}
        if "hada_w1_a" in t:
            w1 = t["hada_w1_a"].flatten(1) @ t["hada_w1_b"].flatten(1)
            w2 = t["hada_w2_a"].flatten(1) @ t["hada_w2_b"].flatten(1)
            updown, dim = w1 * w2, t["hada_w1_b"].shape[0]
        else:
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
            dim = t["lokr_w1_b"].shape[0] if "lokr_w1_b" in t else None
            dim = t["lokr_w2_b"].shape[0] if "lokr_w2_b" in t else dim
            if w2.dim() == 4:
                w1 = w1.unsqueeze(2).unsqueeze(2)
            updown = torch.kron(w1, w2.contiguous())
        scale = float(t["alpha"]) / dim if dim else 1.0
        return updown.reshape(weight_shape) * scale

    return delta
