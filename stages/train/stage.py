"""The train stage as the runner calls it: one fan-in shard holding every list."""

from __future__ import annotations

from typing import Any

from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec
from stages.train.config import RESUME_NEUTRAL_FIELDS, TrainConfig

__all__ = ["SPEC", "run_shard", "shard_result", "model_table", "train_split", "train_model"]

METRIC_KEYS = ("steps", "resumed_from", "lists", "skipped_lists", "final_loss", "final_reward_accuracy")


def model_table(result: dict[str, Any], config: TrainConfig) -> Any:
    """The ``model`` table of a training result: one row, the model folder and a digest of its weights
    (what a stage reading the trained model, eval, is fingerprinted by)."""
    from data_schemas.tables import validate_table
    from stages.lib.models.digest import model_digest

    row = {
        "model_dir": str(result["model_dir"]),
        "weights_sha256": model_digest(result["model_dir"]),
        "base_model": config.model,
        "loss": str(config.loss),
        "steps": int(result["steps"]),
    }
    return validate_table([row], "model")


def train_split(tasks: Any) -> Any:
    """The tasks a model may train on: every row whose ``split`` is not ``eval`` (ingest already keeps held-out
    tasks in their own table; this guards tables assembled by hand)."""
    import pyarrow.compute as pc

    if "split" not in tasks.column_names:
        return tasks
    return tasks.filter(pc.fill_null(pc.not_equal(tasks["split"], "eval"), True))


def shard_result(result: dict[str, Any], config: TrainConfig) -> ShardResult:
    """The runner's view of a :func:`~stages.train.loop.train_model` result: the ``model`` table, the metrics,
    and the model and log as artifacts."""
    metrics = {key: float("nan") if result[key] is None else float(result[key]) for key in METRIC_KEYS}
    return ShardResult(
        tables={"model": model_table(result, config)},
        quarantine=result["quarantine"],
        metrics=metrics,
        artifacts=[result["model_dir"], result["log_path"]],
    )


def run_shard(inputs: ShardInputs, output: ShardOutput, config: TrainConfig) -> ShardResult:
    """Train on all lists of the run; the model lands in ``scratch_dir/model`` and is returned as an artifact.

    Checkpoints go to ``scratch_dir/checkpoints``; the runner keeps ``scratch_dir`` between attempts,
    so a retried shard resumes from the newest checkpoint. Started by a launcher (torchrun: see
    :class:`pipeline.torchrun_executor.TorchrunExecutor`), every process runs this and they join the
    process group its environment describes to train one model with DDP (rank 0 writes the files);
    without one it is the plain single-process loop.
    """
    from stages.train.distributed import init_distributed
    from stages.train.loop import train_model
    from stages.train.povid_schedule import train_povid_two_stage

    init_distributed(config.device)
    train = train_povid_two_stage if config.povid_two_stage else train_model  # POVID's two stages, or one run
    tasks = train_split(inputs.table("tasks"))
    return shard_result(train(config, tasks, inputs.table("listwise"), output.scratch_dir), config)


def train_model(config: TrainConfig, tasks_table: Any, listwise_table: Any, out_dir: Any, **kwargs: Any) -> dict[str, Any]:
    """Train and save the model; see :func:`stages.train.loop.train_model` (imported lazily: it pulls in torch)."""
    from stages.train.loop import train_model as _train_model

    return _train_model(config, tasks_table, listwise_table, out_dir, **kwargs)


SPEC = StageSpec(
    name="train",
    config_cls=TrainConfig,
    reads=("tasks", "listwise"),
    writes=("model",),
    run_shard=run_shard,
    fan_in=True,
    uses_model=True,
    resume_neutral=RESUME_NEUTRAL_FIELDS,
    description="Train the policy on the ranked lists with a preference loss (perpo by default; dpo, ipo, "
    "mdpo, mipo, leanpo, povid), optionally with LoRA; checkpoints resume an interrupted run.",
)
