"""Backend registry: ``Backend`` name -> constructor from a :class:`SampleConfig`."""

from __future__ import annotations

from typing import Callable

from stages.lib.errors import ConfigError
from stages.lib.families import profile_for
from stages.sample.config import Backend, SampleConfig
from stages.sample.sampler import Sampler

__all__ = ["BACKENDS", "make_sampler", "keep_tokens_of"]


def keep_tokens_of(config: SampleConfig) -> str:
    """The special tokens the model's family keeps when decoding (``keep_tokens`` of its profile);
    ``""`` when the family cannot be told (the model load then reports what is wrong)."""
    try:
        return profile_for(config.family, config.model).keep_tokens
    except ConfigError:
        return ""


def _make_hf(config: SampleConfig) -> Sampler:
    from stages.sample.hf_backend import HFSampler

    return HFSampler(config.model, device=config.device, dtype=config.dtype, batch_size=config.batch_size,
                     keep_tokens=keep_tokens_of(config))


def _make_vllm(config: SampleConfig) -> Sampler:
    from stages.sample.vllm_backend import VLLMSampler

    return VLLMSampler.from_config(config, seed=config.seed, keep_tokens=keep_tokens_of(config))


BACKENDS: dict[Backend, Callable[[SampleConfig], Sampler]] = {
    Backend.HF: _make_hf,
    Backend.VLLM: _make_vllm,
}


def make_sampler(config: SampleConfig) -> Sampler:
    """Load the model of ``config`` with its backend; raises ModelError (bad model) or ImportError (vllm missing)."""
    return BACKENDS[Backend(config.backend)](config)
