"""``[reference]`` settings: which model scores the responses, with which engine, on what hardware."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stages.base import StageConfig
from stages.sample.config import Backend, check_vllm_resources

__all__ = ["ReferenceConfig"]


class ReferenceConfig(StageConfig):
    """``[reference]``: which model scores the responses, with which engine, on what hardware.

    Fields marked 'hf:' or 'vllm:' apply to that backend only and are ignored by the other (as in
    ``[sample]``), so one pipeline.toml switches engines with ``--set reference.backend=vllm``.
    """

    # what is computed
    backend: Backend = Field(
        Backend.HF,
        description="Scoring engine: 'hf' (transformers forward passes, CPU or GPU) or 'vllm' (prompt "
        "log-probs of a vLLM engine; GPU only, install with `pip install 'perpo-pipeline[vllm]'`). "
        "Both score the same tokens.",
    )
    model: str = Field(
        "",
        description="Reference model: a local folder or Hub id. Empty means the sample stage's model "
        "(the policy before training is its own reference).",
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
    # how fast / where
    batch_size: int = Field(16, ge=1, description="hf: responses scored per forward pass (vllm batches internally).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="hf: where the model runs; 'auto' uses a CUDA GPU when one is visible (vllm: always GPU)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; 'auto' is bfloat16 on GPU, float32 on CPU."
    )
    num_actors: int = Field(1, ge=1, description="Model replicas (Ray actors) scoring shards in parallel.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs Ray reserves per actor (0 on CPU; vllm: at least tensor_parallel_size).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor.")
    # vllm backend
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one engine shards the model over.")
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="vllm: context length (prompt with image tokens + response); unset uses the model's. "
        "A list with a longer response is quarantined as 'scoring_failed'.",
    )
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="vllm: fraction of GPU memory the engine may take.")
    limit_mm_per_prompt: int = Field(1, ge=1, description="vllm: images allowed per prompt (tasks have one).")

    @model_validator(mode="after")
    def _check_backend_resources(self) -> "ReferenceConfig":
        check_vllm_resources("reference", self)
        if self.povid_image_term and self.backend == Backend.VLLM:
            raise ValueError(
                "povid_image_term = true needs backend = 'hf' (the term takes per-position argmax tokens of a "
                "noised-image forward, which vLLM's prompt log-probs do not give); set backend = 'hf'"
            )
        return self
