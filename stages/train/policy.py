"""The model the train stage optimises: loaded like every stage loads a VLM, with LoRA adapters when asked.

LoRA follows peft; ``lora_exclude_modules`` keeps whole subtrees (LLaVA's recipe: the vision tower
and the projector) free of adapters, ``lora_modules_to_save`` trains modules in full beside them.
"""

from __future__ import annotations

from typing import Any

from stages.lib.errors import ConfigError
from stages.train.config import TrainConfig

__all__ = ["precision", "load_policy"]


def precision(config: TrainConfig) -> tuple[str, bool]:
    """(weights dtype, bf16 autocast?) for the config on the device it resolves to.

    On GPU, ``auto`` keeps float32 master weights under bf16 autocast (a 5e-6 update is below
    bf16's resolution), except under LoRA where the frozen base is stored in bf16 (peft keeps the
    adapters in float32). On CPU everything is float32 unless ``dtype`` says otherwise.
    """
    from stages.vlm.load import resolve_device

    if resolve_device(config.device, "train") != "cuda":
        return ("float32" if config.dtype == "auto" else config.dtype), False
    if config.dtype == "auto":
        return ("bfloat16" if config.lora else "float32"), True
    return config.dtype, config.dtype == "bfloat16"


def _under_any(parts: list[str]) -> str | None:
    """A peft module regex matching every module inside one named by ``parts`` (e.g. the whole vision tower)."""
    import re

    if not parts:
        return None
    return r"(?:.*\.)?(?:" + "|".join(re.escape(p) for p in parts) + r")(?:\..*)?"


def load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """Load the model to train (optionally wrapped with LoRA adapters) and its processor."""
    import torch

    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    if not config.model:
        raise ConfigError("[train] model is empty and no sample model was filled in; set [train] model to a folder or Hub id")
    model, processor = load_vlm(EngineConfig(model=config.model, device=config.device, dtype=precision(config)[0]), "train")
    torch.manual_seed(config.seed)  # LoRA initialisation and dropout draw from this stream (checkpointed)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_targets(),
            exclude_modules=_under_any(config.lora_exclude_modules),
            modules_to_save=list(config.lora_modules_to_save) or None,
        )
        model = get_peft_model(model, lora)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
    model.train()
    return model, processor
