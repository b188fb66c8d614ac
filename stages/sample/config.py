"""``[sample]``: which VLM, how many responses per task, how to sample them, and where it runs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from stages.base import StageConfig
from stages.lib.families import checked_family

__all__ = ["check_vllm_resources", "Backend", "DEFAULT_MODEL", "SampleConfig", "SamplingSettings"]

DEFAULT_MODEL = "runs/_models/tiny-vlm"


class Backend(StrEnum):
    """Sampling engines; :data:`stages.sample.backends.BACKENDS` maps each to its constructor."""

    HF = "hf"
    VLLM = "vllm"


@dataclass(frozen=True)
class SamplingSettings:
    """What a sampling call needs besides the model: ``n`` draws per request at these settings.

    The sample stage takes it from :meth:`SampleConfig.settings`; other stages that reuse
    :func:`stages.sample.rows.sample_rows` (perturb) build one from their own config.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int = 0


def check_vllm_resources(section: str, config: Any) -> None:
    """Raise ``ValueError`` (shown as a config error) when a vllm backend section asks for the CPU or
    for fewer GPUs per actor than its ``tensor_parallel_size``. Shared by every section with a backend."""
    if config.backend != Backend.VLLM:
        return
    if config.device == "cpu":
        raise ValueError(f"[{section}] backend = 'vllm' needs a GPU but device = 'cpu'; use backend = 'hf' on CPU")
    if 0 < config.num_gpus < config.tensor_parallel_size:
        raise ValueError(
            f"[{section}] num_gpus = {config.num_gpus} per actor is less than tensor_parallel_size = "
            f"{config.tensor_parallel_size}; set num_gpus >= tensor_parallel_size"
        )


class SampleConfig(StageConfig):
    """Sample ``n`` responses per task from the policy VLM (PerPO's self-sampled candidates)."""

    # -- the model ---------------------------------------------------------------------------------
    backend: Backend = Field(
        Backend.HF,
        description="Sampling engine: 'hf' (transformers generate, CPU or GPU) or 'vllm' "
        "(GPU only, install with `pip install 'perpo-pipeline[vllm]'`).",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="Policy VLM: a local folder or a Hub model id. The default is the tiny offline model "
        "(`perpo-pipeline make-tiny-model --out runs/_models/tiny-vlm`).",
    )
    family: str = Field(
        "",
        description="Model family of the policy, from the registry in stages/lib/families.py (how it writes boxes, "
        "how our ground-truth and hallucinated candidates are written for it, LoRA targets): '' = from the model's "
        "config.json model_type (an unknown type gets 'generic': pixel candidates, auto parsing).",
    )

    # -- what to sample ----------------------------------------------------------------------------
    n: int = Field(4, ge=1, le=256, description="Responses sampled per task (PerPO samples N = 20).")
    temperature: float = Field(
        1.0, ge=0.0, le=5.0, description="Sampling temperature; 0 is greedy decoding (all n responses then coincide)."
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest token set with this much probability.")
    max_tokens: int = Field(64, ge=1, description="Maximum new tokens per response; longer ones are kept with finish_reason 'length'.")
    seed: int = Field(
        0,
        ge=0,
        description="Base seed. Each task's seed is a hash of (seed, task_id), so responses do not depend on "
        "sharding, batching or actor placement.",
    )
    include_ground_truth: bool = Field(
        True,
        description="Also emit the annotation itself as one 'ground_truth' candidate per task (answer text; "
        "for grounding, the boxes as text), so every list has a correct response.",
    )

    # -- hf backend --------------------------------------------------------------------------------
    batch_size: int = Field(
        8,
        ge=1,
        description="hf: tasks per generate call (each expands to n sequences); halved automatically on "
        "out-of-memory. vllm batches internally and ignores it.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="hf: where the model runs ('auto': CUDA if visible).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Model weights dtype ('auto': bfloat16 on GPU, float32 on CPU)."
    )

    # -- resources (per Ray actor) -----------------------------------------------------------------
    num_actors: int = Field(1, ge=1, description="Model replicas (Ray actors), each loading the model once.")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per actor (vllm: at least tensor_parallel_size).")
    num_cpus: float = Field(1.0, gt=0.0, description="CPUs per actor.")

    # -- vllm backend ------------------------------------------------------------------------------
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one engine shards the model over.")
    max_model_len: int | None = Field(None, ge=16, description="vllm: context length (prompt + response); unset uses the model's.")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="vllm: fraction of GPU memory the engine may take.")
    limit_mm_per_prompt: int = Field(1, ge=1, description="vllm: images allowed per prompt (tasks have one).")

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        return checked_family(value)

    @model_validator(mode="after")
    def _check_backend_resources(self) -> "SampleConfig":
        check_vllm_resources("sample", self)
        return self

    def settings(self) -> SamplingSettings:
        """Return the sampling settings of this section (n, temperature, top_p, max_tokens, seed)."""
        return SamplingSettings(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed
        )
