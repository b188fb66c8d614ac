"""``[reference]`` settings: which model scores the responses, with which engine, on what hardware."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.vlm.engine_config import Backend, EngineConfig, ModelStageConfig, engine_field

__all__ = ["ReferenceConfig", "SampledWith"]


class SampledWith(BaseModel):
    """How the policy candidates were sampled: filled in from ``[sample]`` when the config is loaded (not a key
    of the file), so that the reference stage can tell whether their stored log-probs are its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    same_engine: bool = False  # [reference] engine loads what [sample] engine loads (stages.vlm.shared.engine_identity)
    temperature: float = 1.0
    top_p: float = 1.0

    def logprobs_are_reference(self) -> bool:
        """True when a policy sample's stored log-prob is the reference's own number for it: same engine,
        and drawn from the untempered, untruncated distribution (temperature 1, top_p 1)."""
        return self.same_engine and self.temperature == 1.0 and self.top_p == 1.0


class ReferenceConfig(ModelStageConfig):
    """``[reference]``: which model scores the responses, with which engine, on what hardware.

    The model and engine are ``[reference.engine]`` (as in every model stage), so one pipeline.toml
    switches engines with ``--set reference.engine.backend=vllm``.
    """

    section = "reference"

    engine: EngineConfig = engine_field(
        'Reference model and its engine: engine.model "" means the sample stage\'s model (the policy before '
        "training is its own reference). 'hf' scores with forward passes, 'vllm' with a vLLM engine's prompt "
        "log-probs; both score the same tokens. batch_size: responses scored per forward pass (hf).",
        batch_size=16,
    )
    append_eos: bool = Field(True, description="Score each response followed by the EOS token, as generated.")
    povid_image_term: bool = Field(
        False,
        description="hf: also store each response's POVID image term under the reference (ref_povid_logps: "
        "teacher-forced on the response with the diffusion-noised image, its argmax tokens scored on the clean "
        "image), which train.loss = 'povid' needs. Doubles the stage's forward passes.",
    )
    reuse_sampled_logprobs: bool = Field(
        True,
        description="Take a policy sample's log-prob from the sampler (its stored logprob_sum over its stored token "
        "ids, EOS included when emitted) instead of scoring it again, when that is the same number: the reference "
        "engine is the sampling engine (same model, backend, device, dtype) and sampling ran at temperature 1 "
        "and top_p 1. Only the other candidates (ground truth, hallucinations, answers on distorted images) are "
        "scored. false re-scores every response.",
    )
    sampled_with: SampledWith | None = Field(None, exclude=True, description="internal: filled in from [sample]")
    share_prompt: bool = Field(
        True,
        description="hf: run a list's prompt and image once and score its responses on the KV cache "
        "(llava-family models; others always score full sequences). Same numbers, less compute.",
    )

    @model_validator(mode="after")
    def _check_backend_resources(self) -> "ReferenceConfig":
        if self.povid_image_term and self.engine.backend == Backend.VLLM:
            raise ValueError(
                "povid_image_term = true needs engine.backend = 'hf' (the term takes per-position argmax tokens of a "
                "noised-image forward, which vLLM's prompt log-probs do not give); set engine.backend = 'hf'"
            )
        return self
