"""The score stage: discriminative rewards (IoU, OCR, VQA accuracy) for every candidate; see :mod:`stages.score.stage`."""

from stages.score.config import ScoreConfig
from stages.score.stage import SPEC, TASK_COLUMNS, run_shard

__all__ = ["SPEC", "ScoreConfig", "TASK_COLUMNS", "run_shard"]
