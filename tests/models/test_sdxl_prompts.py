"""SDXL's long captions (kohya's max_token_length 150/225): both encoders read 75-token chunks, each as its
own <BOS> ... <EOS> sequence, joined again; the pooled embedding is OpenCLIP-G's of the first chunk
(sd-scripts' strategy_sdxl). clip_skip is said to have no effect and is ignored, as kohya does for SDXL."""

from __future__ import annotations

import logging

import pytest
import torch

from lora_scripts.config import ModelConfig, build_config
from lora_scripts.data import scan_dataset
from lora_scripts.models.registry import load_model
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl

CAPTION = " ".join(["a"] * 100)  # "a" is one token: 100 tokens, 75 in the first chunk and 25 in the second


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    folder = save_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))["diffusers"]
    return folder, load_model(ModelConfig(base_model=str(folder)))


def _prepare(model, folder, sample_data, tmp_path, **train):
    cfg = build_config(
        {
            "base_model": str(folder),
            "train_data_dir": str(sample_data),
            "output_dir": str(tmp_path / "o"),
            "resolution": 64,
            "device": "cpu",
            "cache_latents": "no",
            "cache_text_encoder_outputs": False,
            **train,
        }
    )
    model.prepare_inputs(scan_dataset(cfg.data), cfg.data, cfg.train, ["unet"], tmp_path / "cache")


def _states(encoder, tokenizer, text):
    ids = tokenizer([text], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    return encoder(ids.input_ids, output_hidden_states=True)


@torch.no_grad()
def test_max_token_length_reads_chunks_of_75_and_pools_the_first(sdxl, sample_data, tmp_path):
    folder, model = sdxl
    _prepare(model, folder, sample_data, tmp_path, max_token_length=150)
    cond = model.encode_prompt(model.tokenize([CAPTION]))
    assert cond.shape == (1, 1 + 150 + 1 + 1, 64)  # <BOS>, 2 x 75, the last <EOS>/pad, the pooled row
    pairs = ((model.text_encoder, model.tokenizer), (model.text_encoder_2, model.tokenizer_2))
    for k, (encoder, tokenizer) in enumerate(pairs):
        width = slice(32 * k, 32 * (k + 1))
        head = _states(encoder, tokenizer, " ".join(["a"] * 75)).hidden_states[-2][0]
        tail = _states(encoder, tokenizer, " ".join(["a"] * 25)).hidden_states[-2][0]
        assert torch.allclose(cond[0, :76, width], head[:76], atol=1e-5)
        assert torch.allclose(cond[0, 76:151, width], tail[1:76], atol=1e-5)
        assert torch.allclose(cond[0, 151, width], tail[76], atol=1e-5)
    pooled = _states(model.text_encoder_2, model.tokenizer_2, " ".join(["a"] * 75)).text_embeds[0]
    assert torch.allclose(cond[0, -1, :32], pooled, atol=1e-5)


@torch.no_grad()
def test_without_it_captions_are_cut_at_77_tokens_and_clip_skip_is_ignored(
    sdxl, sample_data, tmp_path, caplog
):
    folder, model = sdxl
    with caplog.at_level(logging.WARNING, logger="lora_scripts"):
        _prepare(model, folder, sample_data, tmp_path, clip_skip=2)
    assert any("clip_skip has no effect on SDXL" in r.getMessage() for r in caplog.records)
    assert model.clip_skip == 1  # what samples pass to the pipeline too
    cond = model.encode_prompt(model.tokenize([CAPTION]))
    assert cond.shape == (1, 77 + 1, 64)
    first = _states(model.text_encoder, model.tokenizer, CAPTION).hidden_states[-2][0]
    second = _states(model.text_encoder_2, model.tokenizer_2, CAPTION)
    assert torch.allclose(cond[0, :77], torch.cat([first, second.hidden_states[-2][0]], -1), atol=1e-5)
    assert torch.allclose(cond[0, -1, :32], second.text_embeds[0], atol=1e-5)
