"""`classify` backend: any transformers image classifier proposes "<label> style" (the seed's flow)."""

from __future__ import annotations

import torch
from PIL import Image

from ..errors import ConfigError
from .source import ModelRef


class Classifier:
    def __init__(self, ref: ModelRef, template: str = "{label} style", top_k: int = 1, device: str = "auto"):
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        from .hf import load_transformers

        check_template(template)
        if top_k < 1:
            raise ConfigError(f"--top-k is {top_k}", "Use 1 or more labels per image")
        self.model, self.processor = load_transformers(
            AutoModelForImageClassification, AutoImageProcessor, ref, device
        )
        self.template, self.top_k = template, min(top_k, self.model.config.num_labels)

    def __call__(self, images: list[Image.Image]) -> list[str]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        top = logits.softmax(-1).topk(self.top_k, dim=-1).indices.tolist()
        return [self.template.format(label=", ".join(self._name(i) for i in row)) for row in top]

    def _name(self, index: int) -> str:
        # ImageNet names list synonyms ("cellular telephone, cellular phone, ..."): the first one reads best.
        return str(self.model.config.id2label[index]).split(",")[0].strip().replace("_", " ")


def check_template(template: str) -> None:
    try:
        template.format(label="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"The prompt template '{template}' is not valid ({exc!r})",
            "Write it with {label} where the label goes, e.g. '{label} style'",
        ) from exc
    if "{label}" not in template:
        raise ConfigError(
            f"The prompt template '{template}' has no {{label}}", "Add {label}, e.g. '{label} style'"
        )
