"""Rows of the ``listwise``, ``pairs`` and ``groups`` tables built from one ranked list. Pure functions.

Preference between two responses of a ranked list: with rewards, a strictly higher reward; without
(caption lists) or in a list ordered by origin (``[rank] order_by = "origin"``), a strictly more
preferred origin. Pairs also need ``margin >= min_margin`` when rewards order the list. Groups take the top k and the bottom k (disjoint), shrinking k until every chosen
response is preferred to every rejected one.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Sequence

from stages.rank.config import PairsMode
from stages.rank.ordering import Candidate, RankedList

__all__ = ["PAIR_INDICES", "prefers", "listwise_row", "pair_rows", "group_row"]

# Which positions (i, j), i < j, of a ranked list of length n are paired; the registry behind `pairs_mode`.
PAIR_INDICES: dict[PairsMode, Callable[[int], Iterable[tuple[int, int]]]] = {
    PairsMode.BEST_VS_WORST: lambda n: [(0, n - 1)] if n >= 2 else [],
    PairsMode.BEST_VS_EACH: lambda n: [(0, j) for j in range(1, n)],
    PairsMode.ALL_PAIRS: lambda n: itertools.combinations(range(n), 2),
}


def prefers(a: Candidate, b: Candidate, origin_order: Sequence[str], by_origin: bool = False) -> bool:
    """Return whether ``a`` is strictly preferred to ``b`` (by reward, or by origin when rewards are null or ``by_origin``)."""
    if a.reward is not None and b.reward is not None and not by_origin:
        return a.reward > b.reward
    rank = {origin: i for i, origin in enumerate(origin_order)}
    return rank.get(a.origin, len(rank)) < rank.get(b.origin, len(rank))


def _better(ranked: RankedList, origin_order: Sequence[str]) -> Callable[[int, int], bool]:
    """Whether position i of ``ranked`` is strictly preferred to position j (a reviewed unscored list: i < j)."""
    cands = ranked.candidates
    if ranked.reviewed and not ranked.scored:
        return lambda i, j: i < j
    return lambda i, j: prefers(cands[i], cands[j], origin_order, ranked.by_origin)


def listwise_row(task_id: str, task_type: str, prompt: str, ranked: RankedList) -> dict[str, Any]:
    """Return the ``listwise`` row of a kept list; ``rewards`` is null if unscored, ``ref_logps`` is the reference stage's."""
    cands = ranked.candidates
    return {
        "task_id": task_id,
        "task_type": task_type,
        "prompt": prompt,
        "responses": [c.text for c in cands],
        "rewards": [c.reward for c in cands] if ranked.scored else None,
        "origins": [c.origin for c in cands],
        "cand_ids": [c.cand_id for c in cands],
        "logprob_sums": [c.logprob_sum for c in cands],
        "n_tokens": [c.n_tokens for c in cands],
        "response_token_ids": [None if c.token_ids is None else list(c.token_ids) for c in cands],
        "ref_logps": None,
        "ref_n_tokens": None,
    }


def pair_rows(
    task_id: str,
    prompt: str,
    ranked: RankedList,
    *,
    mode: PairsMode,
    min_margin: float,
    origin_order: Sequence[str],
) -> list[dict[str, Any]]:
    """Return the ``pairs`` rows of a ranked list under ``mode``; pairs that are not a clear preference are skipped."""
    cands = ranked.candidates
    better = _better(ranked, origin_order)
    rows = []
    for i, j in PAIR_INDICES[mode](len(cands)):
        chosen, rejected = cands[i], cands[j]
        if not better(i, j):
            continue
        margin = None
        if ranked.scored:
            margin = chosen.reward - rejected.reward
            if margin < min_margin - 1e-12 and not ranked.by_origin:  # by origin: the origins decide, not the margin
                continue
        rows.append(
            {
                "task_id": task_id,
                "prompt": prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "chosen_reward": chosen.reward,
                "rejected_reward": rejected.reward,
                "margin": margin,
                "chosen_origin": chosen.origin,
                "rejected_origin": rejected.origin,
            }
        )
    return rows


def group_row(
    task_id: str, prompt: str, ranked: RankedList, *, group_k: int, origin_order: Sequence[str]
) -> dict[str, Any] | None:
    """Return the ``groups`` row (top k vs bottom k, disjoint and strictly separated), or ``None`` if k reaches 0."""
    cands = ranked.candidates
    n = len(cands)
    k = min(group_k, n // 2)
    better = _better(ranked, origin_order)
    # The list is sorted, so it is enough that the worst chosen beats the best rejected.
    while k > 0 and not better(k - 1, n - k):
        k -= 1
    if k == 0:
        return None
    chosen, rejected = cands[:k], cands[n - k :]
    return {
        "task_id": task_id,
        "prompt": prompt,
        "chosen": [c.text for c in chosen],
        "rejected": [c.text for c in rejected],
        "chosen_rewards": [c.reward for c in chosen] if ranked.scored else None,
        "rejected_rewards": [c.reward for c in rejected] if ranked.scored else None,
    }
