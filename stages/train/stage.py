"""The train stage as the runner calls it: one fan-in shard holding every list."""

from __future__ import annotations

from typing import Any

from stages.base import ShardInputs, ShardOutput, ShardResult
from stages.train.config import TrainConfig

__all__ = ["run_shard", "shard_result"]

METRIC_KEYS = ("steps", "resumed_from", "lists", "skipped_lists", "final_loss", "final_reward_accuracy")


def shard_result(result: dict[str, Any]) -> ShardResult:
    """The runner's view of a :func:`~stages.train.loop.train_model` result: no table, the metrics, model and log as artifacts."""
    metrics = {key: float("nan") if result[key] is None else float(result[key]) for key in METRIC_KEYS}
    return ShardResult(
        tables={},
        quarantine=result["quarantine"],
        metrics=metrics,
        artifacts=[result["model_dir"], result["log_path"]],
    )


def run_shard(inputs: ShardInputs, output: ShardOutput, config: TrainConfig) -> ShardResult:
    """Train on all lists of the run; the model lands in ``scratch_dir/model`` and is returned as an artifact.

    Checkpoints go to ``scratch_dir/checkpoints``; the runner keeps ``scratch_dir`` between attempts,
    so a retried shard resumes from the newest checkpoint.
    """
    from stages.train.loop import train_model

    return shard_result(train_model(config, inputs.table("tasks"), inputs.table("listwise"), output.scratch_dir))
