"""The train stage: preference losses on listwise data (dpo, ipo, perpo, mdpo, mipo, leanpo, povid).

Importing this package stays light (no torch): the losses, log-prob scoring and the loop are in
submodules imported when used. ``train_model`` is the entry point the CLI's ``train`` command calls;
``python -m stages.train --run-dir RUN`` (:mod:`stages.train.launch`) runs it on a run folder in one
process or, under ``torchrun`` / ``accelerate launch``, in several with DistributedDataParallel.
"""

from __future__ import annotations

from typing import Any

from stages.base import StageSpec
from stages.train.config import RESUME_NEUTRAL_FIELDS, TrainConfig
from stages.train.loss_names import DEFAULT_BETA, NEEDS_REFERENCE, LossName
from stages.train.stage import run_shard

__all__ = ["SPEC", "TrainConfig", "LossName", "DEFAULT_BETA", "NEEDS_REFERENCE", "run_shard", "train_model"]


def train_model(config: TrainConfig, tasks_table: Any, listwise_table: Any, out_dir: Any, **kwargs: Any) -> dict[str, Any]:
    """Train and save the model; see :func:`stages.train.loop.train_model` (imported lazily: it pulls in torch)."""
    from stages.train.loop import train_model as _train_model

    return _train_model(config, tasks_table, listwise_table, out_dir, **kwargs)


SPEC = StageSpec(
    name="train",
    config_cls=TrainConfig,
    reads=("tasks", "listwise"),
    writes=(),
    run_shard=run_shard,
    fan_in=True,
    uses_model=True,
    resume_neutral=RESUME_NEUTRAL_FIELDS,
    description="Train the policy on the ranked lists with a preference loss (perpo by default; dpo, ipo, "
    "mdpo, mipo, leanpo, povid), optionally with LoRA; checkpoints resume an interrupted run.",
)
