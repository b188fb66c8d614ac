"""Turn one task's scored candidates into a ranked list, or say why there is none. Pure functions.

Order: reward (higher first), then origin (``origin_order``, most preferred first), then log-prob
sum (higher first; a missing log-prob sorts after any present one), then ``cand_id`` so that the
order never depends on input order. With ``by_origin`` (``[rank] order_by = "origin"``) the origin
comes first and the reward second, and a list is kept when it holds two origins. Lists whose rewards are all null (caption tasks have no
discriminative reward) are ordered by origin alone and keep null rewards; they are kept only when
they hold at least two origins, since otherwise nothing in the list says which response is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from stages.rank.config import DropReason

__all__ = [
    "Candidate",
    "RankedList",
    "order_candidates",
    "dedupe",
    "drop_reason",
    "cap_indices",
    "rank_candidates",
    "reviewed_list",
]


@dataclass(frozen=True)
class Candidate:
    """One scored response, as the rank stage needs it."""

    cand_id: str
    origin: str
    text: str
    reward: float | None
    logprob_sum: float | None = None
    n_tokens: int | None = None
    token_ids: tuple[int, ...] | None = None  # the sampled ids (None for candidates we wrote)

    def __post_init__(self) -> None:
        if isinstance(self.token_ids, list):  # from a table row: keep the dataclass hashable and frozen
            object.__setattr__(self, "token_ids", tuple(self.token_ids))


@dataclass(frozen=True)
class RankedList:
    """A kept list, best first. ``scored`` is false for lists without rewards (ordered by origin).
    ``reviewed``: the order is a person's (review file), so position alone says which response is better."""

    candidates: tuple[Candidate, ...]
    scored: bool
    n_duplicates: int = 0
    n_capped: int = 0
    reviewed: bool = False
    by_origin: bool = False  # ordered by origin first: a better origin is preferred whatever the rewards


def order_candidates(cands: Sequence[Candidate], origin_order: Sequence[str], by_origin: bool = False) -> list[Candidate]:
    """Return ``cands`` best first: reward, then origin rank, then log-prob, then cand_id (null rewards last);
    ``by_origin``: origin rank first, then reward."""
    origin_rank = {origin: i for i, origin in enumerate(origin_order)}

    def key(c: Candidate) -> tuple:
        reward = -c.reward if c.reward is not None else math.inf
        logprob = -c.logprob_sum if c.logprob_sum is not None else math.inf
        origin = origin_rank.get(c.origin, len(origin_rank))
        return (origin, reward, logprob, c.cand_id) if by_origin else (reward, origin, logprob, c.cand_id)

    return sorted(cands, key=key)


def dedupe(cands: Sequence[Candidate], normalize: Callable[[str], str] | None) -> list[Candidate]:
    """Return ``cands`` without later copies of a normalized text (the first, best-ranked copy is kept)."""
    if normalize is None:
        return list(cands)
    seen: set[str] = set()
    kept = []
    for c in cands:
        key = normalize(c.text)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def drop_reason(cands: Sequence[Candidate], min_spread: float, by_origin: bool = False) -> DropReason | None:
    """Return why this (deduplicated) list cannot be kept, or ``None`` if it can (``by_origin``: it needs two origins)."""
    if not cands:
        return DropReason.NO_CANDIDATES
    if len(cands) < 2:
        return DropReason.TOO_FEW
    rewards = [c.reward for c in cands if c.reward is not None]
    if not rewards or by_origin:
        return DropReason.SINGLE_ORIGIN if len({c.origin for c in cands}) < 2 else None
    if len(set(rewards)) < 2:
        return DropReason.SINGLE_REWARD
    # A tiny tolerance so that a spread equal to min_spread up to float rounding is kept.
    if max(rewards) - min(rewards) < min_spread - 1e-12:
        return DropReason.LOW_SPREAD
    return None


def cap_indices(n: int, max_len: int) -> list[int]:
    """Return the positions kept when a list of ``n`` is capped to ``max_len``: first, last, evenly spaced between."""
    if n <= max_len:
        return list(range(n))
    step = (n - 1) / (max_len - 1)  # > 1, so the rounded positions are distinct
    return [math.floor(i * step + 0.5) for i in range(max_len)]


def rank_candidates(
    cands: Sequence[Candidate],
    *,
    origin_order: Sequence[str],
    normalize: Callable[[str], str] | None,
    min_spread: float,
    max_list_len: int,
    by_origin: bool = False,
) -> RankedList | DropReason:
    """Order, dedupe, filter and cap one task's candidates; return the kept list or the drop reason.

    All candidates must either have a reward or none may (the caller quarantines the mixed case).
    ``by_origin``: ordered by origin first and kept when it holds two origins (``[rank] order_by``).
    """
    ordered = order_candidates(cands, origin_order, by_origin)
    unique = dedupe(ordered, normalize)
    reason = drop_reason(unique, min_spread, by_origin)
    if reason is not None:
        return reason
    kept = [unique[i] for i in cap_indices(len(unique), max_list_len)]
    return RankedList(
        candidates=tuple(kept),
        scored=kept[0].reward is not None,
        n_duplicates=len(ordered) - len(unique),
        n_capped=len(unique) - len(kept),
        by_origin=by_origin,
    )


def reviewed_list(cands: Sequence[Candidate], order: Sequence[str]) -> RankedList:
    """Return the list a person ordered: the candidates named by ``order`` (cand_ids, best first) in that order.

    Rewards are the list's own rewards sorted best first and given out by position, so that every
    reward-based selection downstream follows the person's order (see :mod:`stages.rank.review`).
    Names without a candidate here (quarantined at rank) are skipped.
    """
    by_id = {c.cand_id: c for c in cands}
    chosen = [by_id[cid] for cid in order if cid in by_id]
    scored = bool(chosen) and all(c.reward is not None for c in chosen)
    if scored:
        rewards = sorted((c.reward for c in chosen), reverse=True)
        chosen = [replace(c, reward=r) for c, r in zip(chosen, rewards)]
    return RankedList(candidates=tuple(chosen), scored=scored, reviewed=True)
