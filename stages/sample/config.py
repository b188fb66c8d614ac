"""``[sample]``: which VLM, how many responses per task, how to sample them, and where it runs."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator

from stages.lib.families import checked_family
from stages.vlm.engine_config import EngineConfig, ModelStageConfig, engine_field

__all__ = ["DEFAULT_MODEL", "SampleConfig", "SamplingSettings"]

DEFAULT_MODEL = "runs/_models/tiny-vlm"


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


class SampleConfig(ModelStageConfig):
    """Sample ``n`` responses per task from the policy VLM (PerPO's self-sampled candidates)."""

    section = "sample"

    # -- the model and its engine ------------------------------------------------------------------
    engine: EngineConfig = engine_field(
        "The policy VLM and its engine. The default model is the tiny offline model "
        "(`perpo-pipeline make-tiny-model --out runs/_models/tiny-vlm`).",
        model=DEFAULT_MODEL,
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

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        return checked_family(value)

    def settings(self) -> SamplingSettings:
        """Return the sampling settings of this section (n, temperature, top_p, max_tokens, seed)."""
        return SamplingSettings(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed
        )
