"""Training a chat LoRA through the real CLI and the shared trainer: a PEFT adapter folder that peft loads
with the trained model's logits, eval losses at eval_steps, exact resume, NaN stop, and the refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from llm_files import write_yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from lora_scripts.config import build_config
from lora_scripts.errors import TrainingError
from lora_scripts.train.run import run_training


@pytest.mark.parametrize("fixture", ["tiny_llm", "tiny_qwen2"])
def test_the_cli_trains_a_peft_adapter_folder(cli, request, fixture, llm_config, tmp_path):
    folder = request.getfixturevalue(fixture)
    config = {**llm_config, "base_model": str(folder), "eval_split": 2, "eval_steps": 2, "packing": True}
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", config)))
    assert done.returncode == 0, done.stderr[-3000:]
    adapter = tmp_path / "out" / "cs_tone"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    conf = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["peft_type"] == "LORA" and conf["task_type"] == "CAUSAL_LM"
    assert conf["r"] == 4 and conf["lora_alpha"] == 8 and conf["base_model_name_or_path"] == str(folder)
    linear = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert set(conf["target_modules"]) == linear
    keys = load_file(adapter / "adapter_model.safetensors").keys()
    assert len(keys) == 2 * 2 * len(linear)  # 2 layers x 7 modules x (A, B)
    log = (tmp_path / "out" / "train.log").read_text(encoding="utf-8")
    assert "LLM (transformers causal LM); training a chat LoRA" in log
    assert "4 conversations" in log and "packed into" in log
    assert [line.split(" held-out")[0][-6:] for line in log.splitlines() if "held-out loss 5" in line] == [
        "step 0",
        "step 2",
        "step 4",
    ]
    assert "Held-out loss (2 conversations): base model" in log
    assert (tmp_path / "out" / "report.html").is_file()


def _trained(llm_config, tmp_path, **extra):
    """Train in-process and keep the trainer's own model (with its LoRA layers) to compare against."""
    from lora_scripts.train import run as run_module

    kept = {}
    real = run_module.Trainer

    class Keeping(real):
        def train(self):
            result = super().train()
            kept["model"] = self.model.model
            return result

    run_module.Trainer = Keeping
    try:
        result = run_training(build_config({**llm_config, **extra}))
    finally:
        run_module.Trainer = real
    return result, kept["model"].eval()


def test_peft_loads_the_adapter_with_the_trained_logits(llm_config, tmp_path, tiny_llm):
    result, trained = _trained(llm_config, tmp_path, save_precision="float", max_train_steps=6)
    ids = torch.tensor([[1, 20, 30, 40, 50, 60, 2]])
    base = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
        expected = trained(input_ids=ids).logits
        loaded = PeftModel.from_pretrained(base, str(result.lora_path)).eval()
        got = loaded(input_ids=ids).logits
    assert (expected - before).abs().max() > 1e-3  # the LoRA changed the model
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_rslora_adapter_keeps_its_scaling_in_peft(llm_config, tmp_path, tiny_llm):
    result, trained = _trained(llm_config, tmp_path, save_precision="float", use_rslora=True, lora_rank=16)
    conf = json.loads((result.lora_path / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["use_rslora"] is True and conf["lora_alpha"] == 8 and conf["r"] == 16
    ids = torch.tensor([[1, 20, 30, 40, 2]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
        got = PeftModel.from_pretrained(base, str(result.lora_path)).eval()(input_ids=ids).logits
        assert torch.allclose(got, trained(input_ids=ids).logits, atol=1e-5)


def test_scale_weight_norms_holds_every_adapter_module_under_the_max(llm_config, tmp_path):
    """kohya's max-norm on the chat route too, at the scale peft applies (rsLoRA: alpha/sqrt(r))."""
    from lora_scripts.save.peft_adapter import adapter_weights

    def norms(name, **extra):
        config = {
            **llm_config,
            "output_dir": str(tmp_path / name),
            "use_rslora": True,
            "save_precision": "float",
        }
        result = run_training(build_config({**config, "learning_rate": 5e-2, **extra}))
        weights, _ = adapter_weights(result.lora_path)
        return [(w.up @ w.down * (w.alpha / w.rank)).norm().item() for w in weights.values()]

    assert max(norms("free")) > 0.1
    assert max(norms("held", scale_weight_norms=0.05)) <= 0.05 * (1 + 1e-4)


def test_resume_from_a_saved_state_is_bit_exact(llm_config, tmp_path):
    config = {
        **llm_config,
        "max_train_steps": 6,
        "save_steps": 3,
        "resume": "auto",
        "save_precision": "float",
    }
    unbroken = run_training(build_config({**config, "output_dir": str(tmp_path / "a")})).lora_path
    out = tmp_path / "b"
    run_training(build_config({**config, "output_dir": str(out)}))
    shutil.rmtree(out / "cs_tone")  # as if killed after the state of step 3: only that is left
    assert [p.name for p in (out / "state").iterdir()] == ["step-000003"]
    resumed = run_training(build_config({**config, "output_dir": str(out)}))
    assert resumed.steps == 6 and "Resumed from" in (out / "train.log").read_text(encoding="utf-8")
    a = load_file(unbroken / "adapter_model.safetensors")
    b = load_file(resumed.lora_path / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_nan_loss_stops_with_causes(llm_config, tiny_llm, tmp_path):
    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_llm, broken)
    weights = load_file(broken / "model.safetensors")
    weights["lm_head.weight"][0, 0] = float("nan")
    from safetensors.torch import save_file

    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(TrainingError, match="NaN/inf at step 1.*learning rate"):
        run_training(build_config({**llm_config, "base_model": str(broken)}))
    assert not (tmp_path / "out" / "cs_tone").exists()


def test_dora_adapter_loads_in_peft_with_the_trained_magnitudes(llm_config, tmp_path, tiny_llm, cli):
    result, trained = _trained(llm_config, tmp_path, save_precision="float", use_dora=True, max_train_steps=6)
    conf = json.loads((result.lora_path / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["use_dora"] is True
    tensors = load_file(result.lora_path / "adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"
    base = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    row_norms = base.model.layers[0].self_attn.q_proj.weight.norm(dim=1)
    assert (tensors[key] - row_norms).abs().max() > 1e-4  # trained, not peft's initial value
    ids = torch.tensor([[1, 20, 30, 40, 50, 2]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        got = PeftModel.from_pretrained(base, str(result.lora_path)).eval()(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    text = " ".join(cli("lora", "inspect", str(result.lora_path)).stdout.split())
    assert "DoRA: vLLM and llama.cpp cannot load it" in text and "not LoRA weights" not in text


def test_qlora_trains_on_a_4bit_base_that_peft_reloads(llm_config, tmp_path):
    from bitsandbytes.nn import Linear4bit

    from lora_scripts.models.llm import four_bit_settings
    from lora_scripts.models.tiny_llm import save_tiny_llm

    wide = save_tiny_llm(tmp_path / "tiny-128", hidden=128)  # 4-bit blocks are 64 numbers wide
    result, trained = _trained(
        llm_config, tmp_path, base_model=str(wide), load_in_4bit=True, save_precision="float"
    )
    assert isinstance(trained.model.layers[0].mlp.down_proj.base_layer, Linear4bit)
    assert "frozen weights in 4-bit NF4: QLoRA" in (tmp_path / "out" / "train.log").read_text("utf-8")
    ids = torch.tensor([[1, 20, 30, 40, 50, 2]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(wide, **four_bit_settings())
        got = PeftModel.from_pretrained(base, str(result.lora_path)).eval()(input_ids=ids).logits
        full = AutoModelForCausalLM.from_pretrained(wide).eval()
        on_full = PeftModel.from_pretrained(full, str(result.lora_path)).eval()(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert (on_full - expected).abs().max() > 1e-6  # the 4-bit base really differs from the full one


@pytest.mark.parametrize(
    "extra,expected",
    [
        ({"target_modules": ["q_proj", "qkv"]}, "target_modules names qkv, which this model does not have"),
    ],
)
def test_what_cannot_run_is_one_sentence(cli, llm_config, tmp_path, extra, expected):
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", {**llm_config, **extra})))
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in " ".join(done.stderr.split()) and "Traceback" not in done.stderr


def test_dry_run_shows_the_tokenised_data(cli, llm_config, tmp_path):
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", llm_config)), "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    out = " ".join((done.stdout + done.stderr).split())
    assert "6 conversations" in out and "trained on" in out and "PEFT adapter folder" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_saves_the_adapter_and_state_then_resume_is_bit_exact(llm_config, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    config = {
        **llm_config,
        "max_train_steps": 600,
        "save_steps": 50,
        "resume": "auto",
        "save_precision": "float",
    }
    unbroken = run_training(build_config({**config, "output_dir": str(tmp_path / "a")})).lora_path
    out = tmp_path / "b"
    path = write_yaml(tmp_path / "b.yaml", {**config, "output_dir": str(out)})
    command = [sys.executable, "-m", "lora_scripts.cli", "train", "-c", str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "state" / "step-000050" / "position.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "resume: auto" in err
    step = max(int(p.name.split("-")[1]) for p in (out / "state").glob("step-*"))
    assert step < 600 and (out / f"cs_tone-step{step:06d}" / "adapter_model.safetensors").is_file()
    assert not (out / "cs_tone").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(unbroken / "adapter_model.safetensors")
    b = load_file(out / "cs_tone" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_size_auto_probes_the_longest_row(llm_config, tmp_path, monkeypatch, caplog):
    """Out of memory above 2 rows (injected into the real Llama forward): auto settles on 2."""
    import logging

    from transformers import LlamaForCausalLM

    sizes = []
    real = LlamaForCausalLM.forward

    def forward(self, input_ids=None, **kwargs):
        sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        result = run_training(build_config({**llm_config, "batch_size": "auto", "max_train_steps": 2}))
    assert "batch_size: auto -> 2 (largest that fits at" in caplog.text and "tokens)" in caplog.text
    assert sizes[:3] == [4, 2, 2] and set(sizes[3:]) == {2}  # probed 4 (too big), then 2; trained with 2
    assert result.steps == 2


def test_out_of_memory_mid_run_halves_the_micro_batch(llm_config, monkeypatch, caplog):
    """An out-of-memory error on a batch of 2 rows (injected into the real Llama forward) runs it as 1 + 1."""
    import logging

    from transformers import LlamaForCausalLM

    real = LlamaForCausalLM.forward

    def forward(self, input_ids=None, **kwargs):
        if input_ids.shape[0] > 1 and self.training:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    with caplog.at_level(logging.WARNING, logger="lora_scripts"):
        result = run_training(build_config({**llm_config, "batch_size": 2, "max_train_steps": 3}))
    assert result.steps == 3 and "Out of memory at step 1" in caplog.text


def test_out_of_memory_at_one_row_names_the_llm_settings(llm_config, monkeypatch):
    from transformers import LlamaForCausalLM

    def forward(self, input_ids=None, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    with pytest.raises(TrainingError) as err:
        run_training(build_config({**llm_config, "batch_size": 2}))
    text = str(err.value)
    assert "even with one chat row at a time" in text and "max_seq_len" in text and "resolution" not in text
