"""`caption` backend: any transformers image-to-text captioner (BLIP, GIT, ...) one sentence per image."""

from __future__ import annotations

import torch
from PIL import Image

from .source import ModelRef


class Captioner:
    def __init__(self, ref: ModelRef, max_new_tokens: int = 40, device: str = "auto"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from .hf import load_transformers

        self.model, self.processor = load_transformers(
            AutoModelForImageTextToText, AutoProcessor, ref, device
        )
        self.max_new_tokens = max_new_tokens

    def __call__(self, images: list[Image.Image]) -> list[str]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
