"""The three backends run through the real loading code on tiny models saved in their real layouts."""

from __future__ import annotations

import csv

import pytest

from lora_scripts.data.captions import read_metadata_csv
from lora_scripts.errors import ConfigError, ModelError
from lora_scripts.label.run import LabelOptions, label_folder
from lora_scripts.label.tags import normalise_tag


def test_classify_writes_seed_style_prompts(images, tiny_classifier):
    result = label_folder(LabelOptions(images, model=str(tiny_classifier), batch_size=2))
    rows = read_metadata_csv(images / "metadata.csv")
    assert sorted(rows) == ["img_00.png", "img_01.png", "img_02.png"]
    assert set(rows.values()) <= {"smartphone style", "laptop style"}
    assert result.labelled == 3 and result.kept == 0
    with open(images / "metadata.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["filename", "prompt"]


def test_classify_top_k_template_and_trigger(images, tiny_classifier):
    opts = LabelOptions(images, model=str(tiny_classifier), template="a {label} in neon", top_k=2)
    opts.trigger = "tchphn"
    label_folder(opts)
    for prompt in read_metadata_csv(images / "metadata.csv").values():
        assert prompt.startswith("tchphn, a ") and prompt.endswith(" in neon")
        assert "smartphone" in prompt and "laptop" in prompt


def test_bad_template_is_a_sentence(images, tiny_classifier):
    with pytest.raises(ConfigError, match=r"\{label\}"):
        label_folder(LabelOptions(images, model=str(tiny_classifier), template="{name} style"))


def test_caption_backend_with_blip(images, tiny_captioner):
    opts = LabelOptions(images, backend="caption", model=str(tiny_captioner), trigger="neonstyle")
    opts.max_new_tokens = 5
    label_folder(opts)
    rows = read_metadata_csv(images / "metadata.csv")
    assert len(rows) == 3
    assert all(prompt.startswith("neonstyle") for prompt in rows.values())


def test_tags_backend_thresholds_underscores_and_order(images, tiny_tagger):
    label_folder(LabelOptions(images, backend="tags", model=str(tiny_tagger)))
    prompts = set(read_metadata_csv(images / "metadata.csv").values())
    # character tags >= 0.85 first, then general >= 0.35 by score; ratings never; kaomoji kept as is
    assert prompts == {"hatsune miku, smartphone, glowing edges, ^_^"}


def test_tags_backend_blacklist_and_thresholds(images, tiny_tagger):
    opts = LabelOptions(images, backend="tags", model=str(tiny_tagger), blacklist=["glowing_edges", "^_^"])
    opts.general_threshold, opts.character_threshold = 0.1, 0.5
    label_folder(opts)
    prompts = set(read_metadata_csv(images / "metadata.csv").values())
    assert prompts == {"hatsune miku, hakurei reimu, smartphone, long hair"}


def test_normalise_tag():
    assert normalise_tag("long_hair") == "long hair"
    assert normalise_tag("^_^") == "^_^"


@pytest.mark.parametrize(
    ("backend", "model_fixture", "found"),
    [
        ("classify", "tiny_captioner", "'blip' model"),
        ("caption", "tiny_classifier", "'vit' model"),
        ("classify", "tiny_tagger", "WD14 ONNX tagger"),
        ("tags", "tiny_classifier", "transformers model"),
    ],
)
def test_model_of_the_wrong_kind(images, request, backend, model_fixture, found):
    folder = request.getfixturevalue(model_fixture)
    with pytest.raises(ModelError, match="not an") as info:
        label_folder(LabelOptions(images, backend=backend, model=str(folder)))
    assert found in str(info.value)
    assert not (images / "metadata.csv").exists()


def test_onnx_graph_that_is_not_a_tagger(images, tiny_tagger, tmp_path):
    folder = tmp_path / "broken_tagger"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not an onnx graph")
    (folder / "selected_tags.csv").write_text((tiny_tagger / "selected_tags.csv").read_text())
    with pytest.raises(ModelError, match="not a readable WD14"):
        label_folder(LabelOptions(images, backend="tags", model=str(folder)))


@pytest.mark.parametrize("backend", ["classify", "caption", "tags"])
def test_offline_hub_model_names_the_model_and_the_fix(images, backend, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        label_folder(LabelOptions(images, backend=backend, model="nobody-here/no-such-model"))
    message = str(info.value)
    assert "'nobody-here/no-such-model' is not on this machine" in message
    assert "--model ./models/no-such-model" in message
    assert "\n" not in message


def test_model_that_is_neither_folder_nor_hub_id(images):
    with pytest.raises(ModelError, match="neither a folder"):
        label_folder(LabelOptions(images, model="./missing/models/vit"))
