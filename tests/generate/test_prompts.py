"""WebUI prompt syntax: <lora:name:weight> tags, weights, whitespace, and one sentence per malformed tag."""

import pytest

from lora_scripts.errors import ConfigError
from lora_scripts.generate.prompts import LoraRef, PromptSpec, parse_prompt
from lora_scripts.generate.samplers import SAMPLERS, make_scheduler, sampler_name


@pytest.mark.parametrize(
    "text, prompt, loras",
    [
        ("futuristic smartphone", "futuristic smartphone", []),
        (
            "<lora:tech_phone:0.7> <lora:metal:0.4> futuristic smartphone, glowing edges",
            "futuristic smartphone, glowing edges",
            [("tech_phone", 0.7), ("metal", 0.4)],
        ),
        ("<lora:tech_phone> phone", "phone", [("tech_phone", 1.0)]),  # no weight = 1.0, like WebUI
        ("<lora:tech_phone:> phone", "phone", [("tech_phone", 1.0)]),
        ("phone <lora:a:-0.5>, metal <lora:b:1.8>", "phone, metal", [("a", -0.5), ("b", 1.8)]),
        ("phone, <lora:a:.5>, metal", "phone, metal", [("a", 0.5)]),
        ("< lora : my style v2 : 1e-1 >   neon\n phone", "neon phone", [("my style v2", 0.1)]),
        ("<LoRA:a:2><lyco:b:0>phone", "phone", [("a", 2.0), ("b", 0.0)]),
        ("a <hypernet:x:1> b", "a <hypernet:x:1> b", []),  # other extra networks stay prompt text
        ("(masterpiece:1.2), phone", "(masterpiece:1.2), phone", []),  # attention syntax untouched
    ],
)
def test_parse_prompt(text, prompt, loras):
    clean, refs = parse_prompt(text)
    assert clean == prompt
    assert [(r.name, r.weight) for r in refs] == loras


@pytest.mark.parametrize(
    "text, words",
    [
        ("<lora:x:abc> phone", ["<lora:x:abc>", "'abc'", "not a number"]),
        ("<lora:x:nan> phone", ["'nan'", "not a number"]),
        ("<lora::0.5> phone", ["no name"]),
        ("<lora:x:0.5 phone", ["closing '>'"]),
        ("<lora:x:0.5:0.2> phone", ["more than one weight"]),
        ("<lora:x:0.5> <lora:x:0.2> phone", ["'x' appears twice"]),
    ],
)
def test_malformed_tags_are_one_sentence(text, words):
    with pytest.raises(ConfigError) as err:
        parse_prompt(text)
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "\n" not in message


def test_spec_text_round_trips_and_weights_can_be_swept():
    spec = PromptSpec.from_text("<lora:a:0.7> phone, <lora:b> glowing", seed=3)
    assert spec.text == "<lora:a:0.7> <lora:b:1> phone, glowing"
    assert PromptSpec.from_text(spec.text, seed=3) == spec
    assert spec.with_weight("a", 0).loras == (LoraRef("b", 1.0), LoraRef("a", 0.0))
    assert spec.with_weight("c", -1).loras[-1] == LoraRef("c", -1.0)
    assert {r.weight for r in spec.with_weight(None, 0.3).loras} == {0.3}


@pytest.mark.parametrize(
    "name, cls",
    [
        ("Euler a", "EulerAncestralDiscreteScheduler"),
        ("euler_a", "EulerAncestralDiscreteScheduler"),
        ("Euler", "EulerDiscreteScheduler"),
        ("DPM++ 2M", "DPMSolverMultistepScheduler"),
        ("dpm++_2m_karras", "DPMSolverMultistepScheduler"),
        ("DDIM", "DDIMScheduler"),
    ],
)
def test_samplers_map_to_diffusers_schedulers(name, cls):
    scheduler = make_scheduler(name, {"prediction_type": "v_prediction", "beta_schedule": "scaled_linear"})
    assert type(scheduler).__name__ == cls
    assert scheduler.config.prediction_type == "v_prediction"  # the model's schedule is kept
    assert sampler_name(name) in SAMPLERS


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(ConfigError, match="Unknown sampler 'Eular a'.*Did you mean 'Euler a'.*DPM\\+\\+ 2M"):
        sampler_name("Eular a")
