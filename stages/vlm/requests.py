"""One request type, one result type, one interface for every sampling backend (hf, vllm).

The sample stage, the perturb stage (answers on distorted images, LLM hallucination injection)
and anything else that asks a VLM for text goes through :class:`Sampler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from data_schemas.quarantine import QuarantineReason

__all__ = ["SampleRequest", "SampledText", "SampleResult", "Sampler"]


@dataclass(frozen=True)
class SampleRequest:
    """One prompt (with at most one image, a ``PIL.Image`` or None for text-only) to sample ``n`` times.

    ``seed`` makes the request reproducible on backends that support per-request seeds
    (hf: exactly; vllm: per-request ``SamplingParams.seed``). ``request_id`` is echoed back.
    """

    request_id: str
    prompt: str
    image: Any | None
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int = 0


@dataclass(frozen=True)
class SampledText:
    """One generated sequence: its text, token count, summed log-prob, why it stopped, and the token
    ids it was generated as (the stop token included when it stopped; None when the backend gives none)."""

    text: str
    n_tokens: int
    logprob_sum: float | None
    finish_reason: str  # "stop" | "length"
    token_ids: tuple[int, ...] | None = None


@dataclass
class SampleResult:
    """All ``n`` sequences for one request (never fewer: empty generations are kept), or an error."""

    request_id: str
    outputs: list[SampledText] = field(default_factory=list)
    error: str | None = None  # set when the backend rejected this request (e.g. the processor refused the image)
    error_reason: QuarantineReason | None = None  # set with ``error``: the stage's quarantine reason

    @classmethod
    def failed(cls, request_id: str, reason: QuarantineReason, message: str) -> "SampleResult":
        """Return the result of a request the backend could not serve (no outputs, ``error`` and its reason)."""
        return cls(request_id=request_id, outputs=[], error=message, error_reason=reason)


@runtime_checkable
class Sampler(Protocol):
    """A loaded model that turns requests into results, in order, one result per request."""

    model_name: str
    backend: str

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        """Return one :class:`SampleResult` per request, in the same order; never raises for one bad request."""
        ...
