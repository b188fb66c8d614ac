"""The rank stage's config section and the names it chooses between (pairs modes, dedupe rules, drop reasons)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from data_schemas.tables import ORIGINS, Origin
from stages.base import OMITTED, StageConfig

__all__ = ["PairsMode", "DedupeMode", "DropReason", "OrderBy", "NORMALIZERS", "DEFAULT_ORIGIN_ORDER", "RankConfig"]


class PairsMode(StrEnum):
    """Which (chosen, rejected) pairs a ranked list yields."""

    BEST_VS_WORST = "best_vs_worst"  # one pair per list: first vs last
    BEST_VS_EACH = "best_vs_each"  # the best response against every other one
    ALL_PAIRS = "all_pairs"  # every i < j of the ranked list


class OrderBy(StrEnum):
    """What ranks a list first: the reward (origins break ties), or the origin (LeanPO: its winner and loser
    are set by how they were made, not by a reward)."""

    REWARD = "reward"  # reward, then origin_order, then log-prob
    ORIGIN = "origin"  # origin_order, then reward, then log-prob; pairs and groups follow the origins


class DedupeMode(StrEnum):
    """How response texts are normalized before duplicates are removed."""

    NONE = "none"
    EXACT = "exact"
    WHITESPACE = "whitespace"
    CASEFOLD_WHITESPACE = "casefold_whitespace"


class DropReason(StrEnum):
    """Why a task yields no list. Counted in the stage metrics as ``dropped_<reason>``."""

    NO_CANDIDATES = "no_candidates"  # nothing reached rank: the task's rows were quarantined upstream
    TOO_FEW = "too_few"  # fewer than two distinct responses
    SINGLE_REWARD = "single_reward"  # every response has the same reward
    LOW_SPREAD = "low_spread"  # max - min reward below min_spread
    SINGLE_ORIGIN = "single_origin"  # an unscored (caption) list whose responses all share one origin
    REVIEW = "review"  # a person dropped it in the review file ([rank] review)


# None means "do not dedupe"; every other mode maps a text to the key duplicates share.
NORMALIZERS: dict[DedupeMode, Callable[[str], str] | None] = {
    DedupeMode.NONE: None,
    DedupeMode.EXACT: lambda text: text,
    DedupeMode.WHITESPACE: lambda text: " ".join(text.split()),
    DedupeMode.CASEFOLD_WHITESPACE: lambda text: " ".join(text.casefold().split()),
}

DEFAULT_ORIGIN_ORDER: tuple[Origin, ...] = (
    Origin.GROUND_TRUTH, Origin.PRIOR_ANSWER, Origin.POLICY, Origin.DISTORTED_IMAGE, Origin.HALLUCINATION,
)
# The defaults as they were before prior_answer existed: what the fingerprint records for them (no run redoes rank).
_ORIGINS_BEFORE_PRIOR = ["policy", "distorted_image", "hallucination", "ground_truth"]
_ORDER_BEFORE_PRIOR = ["ground_truth", "policy", "distorted_image", "hallucination"]


class RankConfig(StageConfig):
    """Sort scored candidates per task, dedupe, filter, and emit listwise rows, pairs and groups."""

    fingerprint_before: ClassVar[dict[str, Any]] = {
        "list_origins": _ORIGINS_BEFORE_PRIOR, "origin_order": _ORDER_BEFORE_PRIOR, "order_by": OMITTED,
    }

    # --- filtering
    min_spread: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Drop a list whose reward spread (max - min) is below this: it carries almost no preference signal.",
    )
    max_list_len: int = Field(
        8,
        ge=2,
        le=256,
        description="Keep at most this many responses per list: the best, the worst and evenly spaced ones between.",
    )
    dedupe: DedupeMode = Field(
        DedupeMode.CASEFOLD_WHITESPACE,
        description="Normalization before duplicate texts are removed (the best-ranked copy is kept): "
        "none | exact | whitespace | casefold_whitespace.",
    )
    list_origins: tuple[Origin, ...] = Field(
        tuple(Origin),  # the enum members (not their strings), so that dumping the default warns of nothing
        description="Origins whose candidates enter the lists (others are counted as candidates_excluded_origin). "
        "PerPO's published lists hold the N policy samples only: ['policy'] with max_list_len >= sample.n "
        "(the perpo-grounding / perpo-ocr presets set both).",
    )
    # --- ordering
    origin_order: tuple[Origin, ...] = Field(
        DEFAULT_ORIGIN_ORDER,
        description="Tie-break among equal rewards, most preferred origin first (then higher log-prob); origins "
        "left out come after the listed ones. Lists without rewards (caption) are ordered by it alone, and "
        "every list when order_by = 'origin'.",
    )
    order_by: OrderBy = Field(
        OrderBy.REWARD,
        description="'reward': lists are ordered by reward, origin_order breaks ties. 'origin': by origin_order first "
        "(then reward): a list is kept when it holds two origins (min_spread does not apply) and pairs and groups "
        "go from the better origin to the worse, whatever the rewards (LeanPO: prior_answer over distorted_image; "
        "the leanpo preset sets it).",
    )
    # --- outputs
    pairs_mode: PairsMode = Field(
        PairsMode.BEST_VS_WORST,
        description="Pairs drawn from each ranked list: best_vs_worst | best_vs_each | all_pairs.",
    )
    min_margin: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Emit a pair only if chosen reward - rejected reward is at least this (and above 0). "
        "Pairs from unscored lists need a strictly better origin instead.",
    )
    group_k: int = Field(
        2,
        ge=1,
        le=64,
        description="Size of the chosen (top) and rejected (bottom) groups of an mDPO row; shrinks for short "
        "lists so that every chosen response is strictly preferred to every rejected one.",
    )
    # --- review
    review: Path | None = Field(
        None,
        description="A review file downloaded from the viewer (`perpo-pipeline view`), one JSON line per task: "
        "{task_id, decision keep|drop, flags, order}. Dropped lists leave the outputs; a list with an order keeps "
        "the person's order. Its content is part of rank's fingerprint: a changed file redoes rank and what follows.",
    )
    # The parsed review, attached once in the driver by stages.rank.stage.prepare (shipped with the config).
    _review: object | None = PrivateAttr(None)

    @field_validator("origin_order")
    @classmethod
    def _origin_order_is_permutation(cls, value: tuple[Origin, ...]) -> tuple[Origin, ...]:
        # Origins may be left out (they rank after the listed ones): an order written before an origin
        # existed stays valid.
        if not value or len(set(value)) != len(value):
            raise ValueError(
                f"origin_order={[str(v) for v in value]} must list origins at most once each; "
                f"expected an ordering of {list(ORIGINS)}"
            )
        return value

    @field_validator("list_origins")
    @classmethod
    def _list_origins_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"list_origins={list(value)} must name at least one origin, each once, of {list(ORIGINS)}")
        return value

    @model_validator(mode="after")
    def _groups_fit_lists(self) -> "RankConfig":
        if 2 * self.group_k > self.max_list_len:
            raise ValueError(
                f"group_k={self.group_k} needs lists of at least {2 * self.group_k} responses but "
                f"max_list_len={self.max_list_len}; raise max_list_len or lower group_k"
            )
        return self

    def loaded_review(self):
        """Return the parsed review file (``stages.rank.review.Review``): the one ``prepare`` attached, else
        read now; ``None`` when ``review`` is unset. A bad file is a :class:`ConfigError` naming the line."""
        if self.review is None:
            return None
        if self._review is None:
            from stages.rank.review import read_review

            self._review = read_review(self.review)
        return self._review
