"""The train stage: preference losses on listwise data (dpo, ipo, perpo, mdpo, mipo, leanpo, povid).

Importing this package stays light (no torch): the losses, log-prob scoring and the loop are in
submodules imported when used. The runner calls ``run_shard`` (one fan-in shard); ``train_model`` is
the loop itself. ``perpo-pipeline train --nproc K`` runs the same shard in K torchrun processes with
DistributedDataParallel (:class:`pipeline.torchrun_executor.TorchrunExecutor`).
"""

from stages.train.config import RESUME_NEUTRAL_FIELDS, TrainConfig
from stages.train.loss_registry import LOSSES, LossName, LossSpec
from stages.train.stage import SPEC, run_shard, train_model

__all__ = ["SPEC", "TrainConfig", "LossName", "LossSpec", "LOSSES", "RESUME_NEUTRAL_FIELDS", "run_shard", "train_model"]
