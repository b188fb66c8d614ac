"""The names of the training losses and their defaults; torch-free so the CLI and config import it cheaply."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["LossName", "DEFAULT_BETA", "NEEDS_REFERENCE"]


class LossName(StrEnum):
    """Every loss the train stage knows. The functions live in :data:`stages.train.losses.LOSSES`."""

    DPO = "dpo"
    IPO = "ipo"
    PERPO = "perpo"
    MDPO = "mdpo"
    MIPO = "mipo"
    LEANPO = "leanpo"
    POVID = "povid"


# β used when the config leaves it unset. LeanPO's reward is β × a *mean* per-token log-likelihood
# (a few nats at most), so it needs a larger scale than the summed log-ratios of the others;
# 2.0 is SimPO's scale for the same kind of reward.
DEFAULT_BETA: Final[dict[LossName, float]] = {name: 0.1 for name in LossName} | {LossName.LEANPO: 2.0}

# Losses that read reference log-probs (the reference stage must have run).
NEEDS_REFERENCE: Final[frozenset[LossName]] = frozenset(LossName) - {LossName.LEANPO}
