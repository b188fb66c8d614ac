"""``[eval]``: which models to compare on the held-out tasks, how to decode, how to summarise."""

from __future__ import annotations

from pydantic import Field

from stages.vlm.engine_config import EngineConfig, ModelStageConfig, engine_field
from stages.score.config import ScoreConfig

__all__ = ["EvalConfig"]


class EvalConfig(ModelStageConfig):
    """``[eval]``: sample the starting policy and the trained model on the held-out tasks, score them, compare."""

    section = "eval"

    enabled: bool = Field(
        False,
        description="Run this stage (after train). Needs held-out tasks: set [ingest] eval_fraction > 0 or give "
        "the corpus a split column.",
    )
    # -- the models --------------------------------------------------------------------------------
    engine: EngineConfig = engine_field(
        'Engine of both models; engine.model is the starting policy the trained model is compared with ("" means '
        "the [sample] model, the policy the data was sampled from). The trained model is the train stage's output, "
        "loaded with the same engine settings. One actor: the stage is one shard.",
    )
    compare_start: bool = Field(True, description="Also evaluate the starting policy (the 'start' column).")

    # -- decoding ----------------------------------------------------------------------------------
    greedy: bool = Field(True, description="Decode one greedy answer per task (the benchmark-style metrics).")
    n: int = Field(8, ge=1, le=256, description="Answers sampled per task for the mean reward, best-of-N and the reward spread.")
    temperature: float = Field(1.0, gt=0.0, le=5.0, description="Sampling temperature of the n answers.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass of the n answers.")
    max_tokens: int = Field(64, ge=1, description="Maximum new tokens per answer.")
    seed: int = Field(0, ge=0, description="Base seed of the sampled answers (per task, as in [sample]).")

    # -- scoring and summary -----------------------------------------------------------------------
    score: ScoreConfig = Field(
        default_factory=ScoreConfig,
        description="Reward settings; unset, a copy of [score], so the held-out tasks are scored with the same rewards.",
    )
    bootstrap_samples: int = Field(1000, ge=100, description="Bootstrap resamples of the tasks for each interval.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Coverage of the bootstrap (percentile) intervals.")

    def engine_for(self, model: str) -> EngineConfig:
        """This section's engine settings with ``model`` in place of ``engine.model`` (the trained model)."""
        return self.engine.model_copy(update={"model": model})


def resolve_eval_section(config: EvalConfig, score: ScoreConfig, ingest: object, train: object) -> None:
    """Fill what ``[eval]`` leaves to other sections and refuse a held-out split that is empty by construction.

    - ``[eval] score`` not given: a copy of ``[score]`` (the held-out tasks get the rewards the data got).
    - eval enabled with ``[ingest] eval_fraction = 0`` on a corpus format without a split column (demo, coco):
      :class:`~stages.lib.errors.ConfigError`, since no task could ever be held out.
    - eval enabled with the train stage disabled: :class:`~stages.lib.errors.ConfigError` (nothing to evaluate).
    """
    from stages.lib.errors import ConfigError

    if "score" not in config.model_fields_set:
        config.score = score.model_copy(deep=True)
    if config.enabled and not getattr(train, "enabled", True):
        raise ConfigError(
            "[eval] enabled = true evaluates the trained model, but [train] enabled = false; "
            "add --set eval.enabled=false (or enable train)"
        )
    fmt = str(getattr(ingest, "format", ""))
    if config.enabled and getattr(ingest, "eval_fraction", 0.0) == 0.0 and fmt in ("demo", "coco"):
        raise ConfigError(
            f"[eval] enabled = true but [ingest] eval_fraction = 0 and format = {fmt!r} has no split column, so "
            "the held-out split would have no tasks; set [ingest] eval_fraction (e.g. 0.25) or [eval] enabled = false"
        )
