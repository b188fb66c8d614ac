"""The train stage: preference losses on listwise data (dpo, ipo, perpo, mdpo, mipo, leanpo, povid).

Importing this package stays light (no torch): the losses, log-prob scoring and the loop are in
submodules imported when used. ``train_model`` is the entry point the CLI's ``train`` command calls;
``python -m stages.train --run-dir RUN`` (:mod:`stages.train.launch`) runs it on a run folder in one
process or, under ``torchrun`` / ``accelerate launch``, in several with DistributedDataParallel.
"""

from stages.train.config import RESUME_NEUTRAL_FIELDS, TrainConfig
from stages.train.loss_names import DEFAULT_BETA, NEEDS_REFERENCE, LossName
from stages.train.stage import SPEC, run_shard, train_model

__all__ = ["SPEC", "TrainConfig", "LossName", "DEFAULT_BETA", "NEEDS_REFERENCE", "RESUME_NEUTRAL_FIELDS", "run_shard", "train_model"]
