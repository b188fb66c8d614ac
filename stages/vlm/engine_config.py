"""One engine config for every model stage: which model, which engine, where it runs, how many replicas.

``[sample.engine]``, ``[perturb.engine]``, ``[reference.engine]`` and ``[eval.engine]`` are all an
:class:`EngineConfig`; a stage that wants other defaults (reference scores 16 responses per forward)
gives its field a default factory (:func:`engine_field`). Sections written before the engine
was nested (``[sample] model = ...``, ``--set reference.backend=vllm``) still load: the stage
configs run :func:`move_flat_engine_keys` before validation, which moves those keys into
``engine`` and logs one deprecation warning per section naming the new keys.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.base import StageConfig

__all__ = [
    "Backend",
    "EngineConfig",
    "ENGINE_FIELDS",
    "ENGINE_RESOURCE_FIELDS",
    "engine_field",
    "move_flat_engine_keys",
    "check_vllm_resources",
    "ModelStageConfig",
]

log = logging.getLogger(__name__)


class Backend(StrEnum):
    """Engines that run a VLM; :data:`stages.vlm.engines.BACKENDS` maps each to its sampler constructor."""

    HF = "hf"
    VLLM = "vllm"


class EngineConfig(BaseModel):
    """The model a stage runs and how: engine, device, precision, batch, replicas (Ray actors).

    Fields marked 'hf:' or 'vllm:' apply to that backend only and are ignored by the other, so one
    pipeline.toml switches engines with ``--set <stage>.engine.backend=vllm``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "",
        description='Model: a local folder or a Hub model id. "" (in every section but [sample]) means the same as '
        "[sample] engine.model, filled in when the config is loaded.",
    )
    backend: Backend = Field(
        Backend.HF,
        description="Engine: 'hf' (transformers, CPU or GPU) or 'vllm' (GPU only, install with "
        "`pip install 'perpo-pipeline[vllm]'`).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="hf: where the model runs ('auto': CUDA if visible).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Model weights dtype ('auto': bfloat16 on GPU, float32 on CPU)."
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="hf: requests per generate call or responses per scoring forward; halved automatically on "
        "out-of-memory. vllm batches internally and ignores it.",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one engine shards the model over.")
    max_model_len: int | None = Field(
        None, ge=16, description="vllm: context length (prompt with image tokens + response); unset uses the model's."
    )
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="vllm: fraction of GPU memory the engine may take.")
    limit_mm_per_prompt: int = Field(1, ge=1, description="vllm: images allowed per prompt (tasks have one).")
    num_actors: int = Field(1, ge=1, description="Model replicas (Ray actors), each loading the model once.")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs Ray reserves per actor (vllm: at least tensor_parallel_size).")
    num_cpus: float = Field(1.0, gt=0.0, description="CPUs Ray reserves per actor.")

    @model_validator(mode="after")
    def _check_backend_resources(self) -> "EngineConfig":
        check_vllm_resources("", self)
        return self


ENGINE_FIELDS: frozenset[str] = frozenset(EngineConfig.model_fields)
"""The keys an ``engine`` table holds (and the flat section keys :func:`move_flat_engine_keys` moves)."""

ENGINE_RESOURCE_FIELDS: frozenset[str] = frozenset(
    {"batch_size", "num_actors", "num_gpus", "num_cpus", "gpu_memory_utilization"}
)
"""Engine fields that change how fast or where work runs, never what it produces: kept out of fingerprints."""


def check_vllm_resources(section: str, config: Any) -> None:
    """Raise ``ValueError`` (shown as a config error) when a vllm engine asks for the CPU or for fewer GPUs per
    actor than its ``tensor_parallel_size``."""
    if config.backend != Backend.VLLM:
        return
    where = f"[{section}] " if section else ""
    if config.device == "cpu":
        raise ValueError(f"{where}backend = 'vllm' needs a GPU but device = 'cpu'; use backend = 'hf' on CPU")
    if 0 < config.num_gpus < config.tensor_parallel_size:
        raise ValueError(
            f"{where}num_gpus = {config.num_gpus} per actor is less than tensor_parallel_size = "
            f"{config.tensor_parallel_size}; set num_gpus >= tensor_parallel_size"
        )


def engine_field(description: str, **defaults: Any) -> Any:
    """A stage config's ``engine`` field whose defaults differ from :class:`EngineConfig`'s by ``defaults``."""
    factory: Callable[[], EngineConfig] = (lambda: EngineConfig(**defaults)) if defaults else EngineConfig
    return Field(default_factory=factory, description=description, json_schema_extra={"engine_defaults": defaults})


def move_flat_engine_keys(section: str, data: Any, defaults: dict[str, Any] | None = None) -> Any:
    """Move engine keys written flat in a stage section (``[sample] model = ...``) into its ``engine`` table.

    ``defaults`` are the stage's own engine defaults (from :func:`engine_field`), applied under the
    moved keys so that a flat file resolves to the same config as the nested one. A key given both
    ways keeps the nested value. Logs one deprecation warning per section listing the new keys.
    """
    if not isinstance(data, dict):
        return data
    flat = [k for k in data if k in ENGINE_FIELDS]
    engine = data.get("engine")
    if not flat and not (defaults and isinstance(engine, dict)):
        return data  # nothing to move; an absent engine gets the field's default factory
    if isinstance(engine, EngineConfig):
        if not flat:
            return data
        engine = engine.model_dump(exclude_unset=True)
    nested = dict(engine) if isinstance(engine, dict) else {}
    out = {k: v for k, v in data.items() if k not in ENGINE_FIELDS}
    out["engine"] = {**(defaults or {}), **{k: data[k] for k in flat}, **nested}
    if not flat:
        return out
    log.warning(
        "[%s] %s: engine keys now live in [%s.engine]; write %s (the old keys still work, for now)",
        section, ", ".join(flat), section, ", ".join(f"{section}.engine.{k}" for k in flat),
    )
    return out


class ModelStageConfig(StageConfig):
    """Base of a stage section that runs a model: holds ``engine`` and accepts the old flat engine keys.

    Subclasses set ``section`` (their TOML section name) and declare ``engine`` with :func:`engine_field`.
    """

    section: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _move_flat_engine_keys(cls, data: Any) -> Any:
        field = cls.model_fields.get("engine")
        extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
        return move_flat_engine_keys(cls.section, data, dict(extra.get("engine_defaults") or {}))
