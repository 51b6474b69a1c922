"""Tiny labelling models with real architectures and real file layouts, built offline with random weights."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

TAGS = [  # (name, category, probability the tiny tagger gives every image)
    ("general", 9, 0.9),
    ("sensitive", 9, 0.1),
    ("smartphone", 0, 0.95),
    ("glowing_edges", 0, 0.6),
    ("^_^", 0, 0.5),
    ("long_hair", 0, 0.2),
    ("hatsune_miku", 4, 0.9),
    ("hakurei_reimu", 4, 0.7),
]


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("vit")
    labels = {0: "smartphone", 1: "laptop"}
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_captioner(tmp_path_factory) -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "neon", "phone", "laptop"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=32)
    text = dict(vocab_size=len(words), hidden_size=32, encoder_hidden_size=32, intermediate_size=64)
    text.update(num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32)
    text.update(bos_token_id=2, sep_token_id=3, pad_token_id=0, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    vision.update(image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    model.save_pretrained(folder)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tagger(tmp_path_factory) -> Path:
    """WD14 layout: model.onnx (NHWC BGR float input, sigmoid scores out) + selected_tags.csv."""
    from onnx import TensorProto, helper, numpy_helper, save

    folder = tmp_path_factory.mktemp("wd14")
    probs = np.array([p for _, _, p in TAGS], dtype=np.float32)
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((3, len(TAGS))) * 1e-5).astype(np.float32)
    bias = np.log(probs / (1 - probs)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input_1:0"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["mean", "weight"], ["logits0"]),
        helper.make_node("Add", ["logits0", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch", len(TAGS)])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(folder / "model.onnx"))
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        writer.writerows((i, name, cat, 1000 - i) for i, (name, cat, _) in enumerate(TAGS))
    return folder


def draw_images(folder: Path, count: int = 3, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        img = Image.new("RGB", (48 + 8 * i, 40), (20 * i, 40, 90))
        ImageDraw.Draw(img).rectangle([8, 8, 30, 30], outline=(0, 255, 240), width=3)
        paths.append(folder / f"img_{i:02d}.png")
        img.save(paths[-1])
    return paths


@pytest.fixture
def draw():
    return draw_images


@pytest.fixture
def images(tmp_path) -> Path:
    draw_images(tmp_path / "images")
    return tmp_path / "images"
