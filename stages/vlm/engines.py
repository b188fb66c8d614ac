"""Engine registry: ``Backend`` name -> a constructor of a :class:`~stages.vlm.requests.Sampler` from an engine config."""

from __future__ import annotations

from typing import Callable

from stages.lib.errors import ConfigError
from stages.lib.families import profile_for
from stages.vlm.engine_config import Backend, EngineConfig
from stages.vlm.requests import Sampler

__all__ = ["BACKENDS", "make_sampler", "keep_tokens_of"]


def keep_tokens_of(engine: EngineConfig, family: str = "") -> str:
    """The special tokens the model's family keeps when decoding (``keep_tokens`` of its profile);
    ``""`` when the family cannot be told (the model load then reports what is wrong)."""
    try:
        return profile_for(family, engine.model).keep_tokens
    except ConfigError:
        return ""


def _make_hf(engine: EngineConfig, stage: str, family: str, seed: int) -> Sampler:
    from stages.vlm.hf_engine import HFSampler

    return HFSampler(engine.model, device=engine.device, dtype=engine.dtype, batch_size=engine.batch_size,
                     keep_tokens=keep_tokens_of(engine, family), stage=stage)


def _make_vllm(engine: EngineConfig, stage: str, family: str, seed: int) -> Sampler:
    from stages.vlm.vllm_engine import VLLMSampler

    return VLLMSampler.from_config(engine, seed=seed, keep_tokens=keep_tokens_of(engine, family), stage=stage)


BACKENDS: dict[Backend, Callable[[EngineConfig, str, str, int], Sampler]] = {
    Backend.HF: _make_hf,
    Backend.VLLM: _make_vllm,
}


def make_sampler(engine: EngineConfig, stage: str, *, family: str = "", seed: int = 0) -> Sampler:
    """Load ``engine.model`` with ``engine.backend`` for ``stage`` (named in errors); ``seed`` is the vllm engine's.

    Raises ConfigError (no model, bad device), ModelError (bad model) or ImportError (vllm missing).
    """
    if not engine.model:
        raise ConfigError(f'[{stage}] engine.model is empty; set it (or [sample] engine.model, which "" stands for)')
    return BACKENDS[Backend(engine.backend)](engine, stage, family, seed)
