"""`network` section: the LoRA being trained."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section


class NetworkConfig(Section):
    network_type: Literal["lora", "locon", "loha", "lokr", "dora"] = Field(
        "lora",
        description="Kind of adapter (LyCORIS's `algo` names): `lora`; `locon` (LoRA on the 3x3 convs too; "
        "conv_rank defaults to lora_rank); `loha` (LoHa, Hadamard product of two low-rank pairs: more "
        "expressive at the same rank); `lokr` (LoKr, Kronecker product: very small files); `dora` (DoRA: "
        "LoRA plus a trained magnitude per input column, LyCORIS's `dora_wd` with wd_on_output=False; "
        "3x3 convs too when conv_rank is set). The file loads in A1111/Forge and ComfyUI (LoHa/LoKr keys: "
        "hada_w1_a..., lokr_w1...; DoRA: lora_down/lora_up/alpha + dora_scale). diffusers drops "
        "dora_scale with a warning, so a DoRA file is not what was trained there.",
    )
    dora_wd: bool = Field(
        False,
        description="LyCORIS/kohya's spelling of DoRA (network_args `dora_wd=True`): with network_type "
        "lora or locon it is the same as network_type: dora.",
    )
    lora_rank: int = Field(8, ge=1, le=1024, description="LoRA rank (kohya: network_dim).")
    lora_alpha: float | None = Field(
        None,
        gt=0,
        description="LoRA alpha; the update is scaled by alpha/rank. Empty means alpha = rank (1.0).",
    )
    conv_rank: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Also train 3x3 convolutions of ResNet/up/down-sample blocks at this rank (LoCon). "
        "Empty: attention and feed-forward layers only (kohya's default).",
    )
    conv_alpha: float | None = Field(
        None, gt=0, description="Alpha of the conv layers. Empty means conv_rank."
    )
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA path during training.")
    train_text_encoder: bool = Field(False, description="Also train LoRA on the CLIP text encoder.")
    target_modules: list[str] | None = Field(
        None,
        description="Layers that get LoRA, by their last name (q_proj, v_proj...). Empty: every linear "
        "layer of the attention and MLP blocks (not the embeddings or lm_head).",
    )
    use_rslora: bool = Field(
        False, description="rsLoRA: scale the update by alpha/sqrt(rank) instead of alpha/rank."
    )
    use_dora: bool = Field(
        False,
        description="DoRA (weight-decomposed LoRA, peft's): also learns a magnitude per output row; often a "
        "little better at the same rank, slower per step. peft, transformers and TGI load it; vLLM does not.",
    )
    scale_weight_norms: float = Field(
        0.0,
        ge=0,
        description="kohya's max-norm regularisation against exploding weights: after each optimiser step, "
        "a LoRA module whose update (up @ down x alpha/rank) has a norm above this is scaled back to it "
        "(up and down each by the square root of the ratio, as kohya). kohya suggests 1 to start; the "
        "steps log how many modules were scaled and their mean norm. 0: off. LoRA and LoCon only (kohya's "
        "networks.lora), not LoHa, LoKr or DoRA.",
    )
    init_lora: str | None = Field(
        None,
        description="Start from an existing LoRA file (kohya or PEFT format, ours or another trainer's) "
        "and keep training it: rank, alpha and trained modules are read from the file.",
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_module(cls, v):
        return [v] if isinstance(v, str) else v

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha if self.lora_alpha is not None else self.lora_rank)

    @property
    def conv_alpha_value(self) -> float:
        return float(self.conv_alpha if self.conv_alpha is not None else (self.conv_rank or 1))

    @model_validator(mode="before")
    @classmethod
    def _locon_trains_convs(cls, data):
        """`network_type: locon` without conv_rank: the 3x3 convs get lora_rank (LyCORIS's default)."""
        if isinstance(data, dict) and data.get("network_type") == "locon" and data.get("conv_rank") is None:
            data = {**data, "conv_rank": data.get("lora_rank", cls.model_fields["lora_rank"].default)}
        return data

    @model_validator(mode="after")
    def _dora_wd_is_dora(self):
        """LyCORIS's `algo: lora|locon` + `dora_wd: true` is our network_type dora (locon's convs kept)."""
        if not self.dora_wd or self.network_type == "dora":
            return self
        if self.network_type not in ("lora", "locon"):
            raise ValueError(
                f"dora_wd works with network_type lora or locon here, not {self.network_type}: "
                "use network_type: dora, or drop dora_wd"
            )
        # the config is frozen once validated, not before: the one place the type is settled
        object.__setattr__(self, "network_type", "dora")
        return self

    @model_validator(mode="after")
    def _max_norm_needs_lora(self):
        """kohya's max-norm is defined on a LoRA's up/down pair (its networks.lora only)."""
        kind = "dora (use_dora)" if self.use_dora else self.network_type
        if self.scale_weight_norms and (self.use_dora or self.network_type not in ("lora", "locon")):
            raise ValueError(
                f"scale_weight_norms works with network_type lora or locon only (kohya's max-norm scales a "
                f"LoRA's up/down pair), not {kind}: remove scale_weight_norms, or train a lora or locon"
            )
        return self
