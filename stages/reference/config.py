"""``[reference]`` settings: which model scores the responses, with which engine, on what hardware."""

from __future__ import annotations

from pydantic import Field, model_validator

from stages.vlm.engine_config import Backend, EngineConfig, ModelStageConfig, engine_field

__all__ = ["ReferenceConfig"]


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
