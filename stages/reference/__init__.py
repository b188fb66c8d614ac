"""The reference stage: summed log-probs of every response under the frozen reference model; see :mod:`stages.reference.stage`."""

from stages.reference.config import ReferenceConfig
from stages.reference.stage import (
    SCORERS,
    SETUPS,
    SPEC,
    ReferenceModel,
    Score,
    Triple,
    run_shard,
    score_lists,
    setup,
)

__all__ = [
    "SPEC",
    "SCORERS",
    "SETUPS",
    "ReferenceConfig",
    "Score",
    "ReferenceModel",
    "Triple",
    "setup",
    "run_shard",
    "score_lists",
]
