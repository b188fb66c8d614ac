"""The rank stage: sort each task's scored candidates, dedupe, drop lists without preference signal,
and emit ``listwise`` rows (PerPO), ``pairs`` (DPO / IPO, TRL-compatible at export) and ``groups`` (mDPO)."""

from stages.rank.config import DEFAULT_ORIGIN_ORDER, NORMALIZERS, DedupeMode, DropReason, PairsMode, RankConfig
from stages.rank.emit import PAIR_INDICES, group_row, listwise_row, pair_rows, prefers
from stages.rank.ordering import (
    Candidate,
    RankedList,
    cap_indices,
    dedupe,
    drop_reason,
    order_candidates,
    rank_candidates,
    reviewed_list,
)
from stages.rank.review import Review, ReviewDecision, ReviewEntry, ReviewFlag, check_review, parse_review, read_review
from stages.rank.stage import SPEC, prepare, run_shard

__all__ = [
    "SPEC",
    "RankConfig",
    "PairsMode",
    "DedupeMode",
    "DropReason",
    "NORMALIZERS",
    "DEFAULT_ORIGIN_ORDER",
    "PAIR_INDICES",
    "Candidate",
    "RankedList",
    "order_candidates",
    "dedupe",
    "drop_reason",
    "cap_indices",
    "rank_candidates",
    "prefers",
    "listwise_row",
    "pair_rows",
    "group_row",
    "reviewed_list",
    "Review",
    "ReviewDecision",
    "ReviewEntry",
    "ReviewFlag",
    "parse_review",
    "read_review",
    "check_review",
    "prepare",
    "run_shard",
]
