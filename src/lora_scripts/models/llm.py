"""The LLM family: any transformers causal language model folder (Llama, Qwen2, Mistral...), loaded with
AutoModelForCausalLM and its own tokenizer. A batch of chat rows (data/chat_dataset.py) -> the token loss.

Its adapters are PEFT folders (`info.adapter_format`), which vLLM, TGI, llama.cpp and peft load.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig, NetworkConfig
from ..config.route import causal_lm_architecture
from ..data.chat_dataset import ChatRow, collate
from ..data.chat_tokens import IGNORE
from ..errors import ConfigError, ModelError
from .detect import ModelSource
from .family import FamilyInfo

log = logging.getLogger(__name__)
INFO = FamilyInfo(
    "llm",
    "LLM (transformers causal LM)",
    adapter_format="peft",
    sample_kind="text",
    item_noun="chat row",
    memory_hint="Lower max_seq_len, set load_in_4bit: true (QLoRA), mixed_precision: bf16 and "
    "gradient_checkpointing: true, or close other programs using the GPU",
)
SAMPLE_TOKENS = 64  # longest sample reply
COMPONENT = "llm"  # the one adapter component: the whole causal LM
WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class CausalLMFamily:
    info = INFO

    def matches_checkpoint(self, keys: list[str]) -> bool:
        return False  # LLMs come as folders (or hub ids), never as one file here

    def matches_folder(self, path: Path) -> bool:
        return causal_lm_architecture(path) is not None

    def load(self, source: ModelSource, cfg: ModelConfig) -> CausalLM:
        tokenizer = load_tokenizer(source.location)
        model = load_causal_lm(source.location, four_bit=cfg.load_in_4bit)
        log.info(
            "Base model %s: %s, %d layers, hidden size %d (LLM route%s)",
            source.location,
            type(model).__name__,
            model.config.num_hidden_layers,
            model.config.hidden_size,
            ", frozen weights in 4-bit NF4: QLoRA" if cfg.load_in_4bit else "",
        )
        return CausalLM(model, tokenizer, source.location, quantized=cfg.load_in_4bit)


LLM = CausalLMFamily()


def check_folder(location: str) -> None:
    """A local folder needs config.json, weights and a tokenizer; say which is missing."""
    path = Path(location)
    if not path.is_dir():
        return  # a hub id: transformers says what is wrong
    if not any((path / name).is_file() for name in WEIGHTS) and not list(path.glob("model-*.safetensors")):
        raise ModelError(
            f"Model folder '{path}' has a config.json but no weights (model.safetensors)",
            "Download the whole model folder, weights included",
        )
    if not any((path / name).is_file() for name in TOKENIZER):
        raise ModelError(
            f"Model folder '{path}' has no tokenizer (tokenizer.json or tokenizer_config.json)",
            "Download the tokenizer files of the model into the same folder",
        )


def load_tokenizer(location: str):
    from transformers import AutoTokenizer

    check_folder(location)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"The tokenizer of '{location}' cannot be loaded ({str(exc).splitlines()[0][:120]})",
            "Check that the model folder is complete",
        ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(location: str, dtype: torch.dtype = torch.float32, four_bit: bool = False) -> nn.Module:
    from transformers import AutoModelForCausalLM

    check_folder(location)
    settings = four_bit_settings() if four_bit else {"dtype": dtype}
    try:
        model = AutoModelForCausalLM.from_pretrained(location, **settings)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"'{location}' cannot be loaded as a causal language model ({str(exc).splitlines()[0][:120]})",
            "Check that the folder is a complete transformers model (config.json, weights, tokenizer)",
        ) from exc
    if four_bit:
        from peft import prepare_model_for_kbit_training

        # peft's QLoRA preparation: norms, embeddings and the head in fp32, everything frozen
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def four_bit_settings() -> dict:
    """transformers' loading settings for a bitsandbytes NF4 base (the QLoRA recipe: NF4 with double
    quantisation, computing in bf16 on a GPU that has it), placed on the GPU, else the CPU (bitsandbytes
    0.48 and later run 4-bit layers on a CPU too)."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "load_in_4bit (QLoRA) needs the bitsandbytes package, which is not installed",
            "Install it with: pip install 'lora-scripts[qlora]' (or remove load_in_4bit)",
        ) from exc
    from transformers import BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    compute = torch.float32
    if cuda:
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    return {"quantization_config": quantization, "device_map": {"": 0 if cuda else "cpu"}}


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every linear layer of the attention and MLP blocks: not the output head."""
    head = model.get_output_embeddings()
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}


class CausalLM:
    info = INFO

    def __init__(self, model: nn.Module, tokenizer, location: str, quantized: bool = False):
        self.model, self.tokenizer, self.location = model, tokenizer, location
        self.quantized = quantized  # 4-bit weights: placed at load time and never cast

    def adapter_modules(self) -> dict[str, nn.Module]:
        return {COMPONENT: self.model}

    def trained_components(self, net: NetworkConfig) -> list[str]:
        return [COMPONENT]

    def lora_targets(self, component: str, net: NetworkConfig) -> dict[str, str]:
        layers = linear_layers(self.model)
        names = sorted({n.rsplit(".", 1)[-1] for n in layers})
        wanted = set(net.target_modules or names)
        unknown = sorted(wanted - set(names))
        if unknown:
            raise ConfigError(
                f"target_modules names {', '.join(unknown)}, which this model does not have",
                f"Its linear layers are: {', '.join(names)}",
            )
        return {n: "linear" for n in layers if n.rsplit(".", 1)[-1] in wanted}

    def frozen_modules(self) -> list[nn.Module]:
        return [] if self.quantized else [self.model]

    def replace_module(self, component: str, module: nn.Module) -> None:
        self.model = module

    def enable_gradient_checkpointing(self, component: str) -> None:
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def prepare_inputs(self, index, data, train, trained, cache_dir: Path) -> None:
        """Nothing to precompute: the chat rows are tokenised before training (train/chat_inputs.py)."""

    def loss(
        self,
        items: list[ChatRow],
        data,
        train,
        rng: random.Random,
        generator: torch.Generator | None = None,
        part: list[int] | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy over the batch's trained tokens (labels != -100), shifted by the model
        (of the rows in `part` only, when given: nothing here is random)."""
        items = items if part is None else [items[i] for i in part]
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in collate(items, self.tokenizer.pad_token_id).items()}
        return self.model(**batch, use_cache=False).loss.float()

    def render(self, requests) -> list[tuple[str, str]]:
        """(base reply, LoRA reply) to each request's prompt, greedy, with the chat template as at inference
        (the base reply with the LoRA layers switched off)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        out = []
        try:
            for request in requests:
                pair = []
                for enabled in (False, True):
                    for layer in layers:
                        layer.enable_adapters(enabled)
                    pair.append(self._reply(request.prompt, request.system or None))
                out.append((pair[0], pair[1]))
        finally:  # never leave training with the LoRA switched off
            for layer in layers:
                layer.enable_adapters(True)
        return out

    def _reply(self, prompt: str, system: str | None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"].to(next(self.model.parameters()).device)
        out = self.bare().generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=SAMPLE_TOKENS,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()

    def metadata_facts(self) -> dict[str, str]:
        return {"architecture": type(self.bare()).__name__, "base_model": self.location}

    def bare(self) -> nn.Module:
        """The model under a data-parallel wrapper (which has no generate() and another class name)."""
        from accelerate.utils import extract_model_from_parallel

        return extract_model_from_parallel(self.model)

    def loss_weight(self, items: list[ChatRow]) -> int:
        """How many terms loss() averages over: the trained tokens after the model's one-token shift.
        A batch split among processes or micro-batches is weighted by these, so the mean stays exact."""
        labels = ([label for s in row.samples for label in s.labels] for row in items)
        return sum(sum(label != IGNORE for label in row[1:]) for row in labels)
