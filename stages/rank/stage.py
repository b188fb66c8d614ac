"""The rank stage's shard function: scored candidates in, ``listwise`` / ``pairs`` / ``groups`` out.

Every task of the shard ends up either as one ``listwise`` row or counted under
``dropped_<reason>`` in the metrics (a filter, not bad input, so no quarantine rows), so that
``tasks_in == lists_out + sum(dropped_*)``. Bad input is quarantined: a scored row whose task is not
in the shard, an unknown origin, a non-finite reward, a null reward among rewarded candidates, a
repeated task_id.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from data_schemas.tables import ORIGINS, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, quarantine_row
from stages.rank.config import NORMALIZERS, DropReason, RankConfig
from stages.rank.emit import group_row, listwise_row, pair_rows
from stages.rank.ordering import Candidate, RankedList, rank_candidates

__all__ = ["TASK_COLUMNS", "SCORED_COLUMNS", "run_shard"]

TASK_COLUMNS = ("task_id", "task_type", "prompt")  # never the image: ranking does not need it
SCORED_COLUMNS = ("task_id", "cand_id", "origin", "text", "reward", "logprob_sum", "n_tokens")


def _candidates_by_task(
    scored: list[dict[str, Any]], task_ids: set[str], quarantine: list[dict[str, Any]]
) -> dict[str, list[Candidate]]:
    """Group scored rows by task, quarantining rows that cannot be ranked."""
    by_task: dict[str, list[Candidate]] = defaultdict(list)
    for row in scored:
        ref = row["cand_id"]
        if row["task_id"] not in task_ids:
            quarantine.append(quarantine_row(ref, "unknown_task", f"task_id {row['task_id']!r} is not in this shard's tasks", row))
        elif row["origin"] not in ORIGINS:
            quarantine.append(quarantine_row(ref, "unknown_origin", f"origin {row['origin']!r} is not one of {list(ORIGINS)}", row))
        elif row["reward"] is not None and not math.isfinite(row["reward"]):
            quarantine.append(quarantine_row(ref, "invalid_reward", f"reward {row['reward']!r} is not a finite number", row))
        else:
            by_task[row["task_id"]].append(Candidate(**{k: row[k] for k in SCORED_COLUMNS if k != "task_id"}))
    return by_task


def _drop_null_rewards_in_scored_list(
    cands: list[Candidate], quarantine: list[dict[str, Any]]
) -> list[Candidate]:
    """Keep a list all-null or all-rewarded: null-reward candidates next to rewarded ones are quarantined."""
    rewarded = [c for c in cands if c.reward is not None]
    if not rewarded or len(rewarded) == len(cands):
        return cands
    for c in cands:
        if c.reward is None:
            quarantine.append(
                quarantine_row(c.cand_id, "missing_reward", "reward is null while other candidates of the task have one")
            )
    return rewarded


def run_shard(inputs: ShardInputs, output: ShardOutput, config: RankConfig) -> ShardResult:
    """Rank every task of the shard; return the three tables, quarantined rows and per-reason counters."""
    tasks = inputs.table("tasks").select(list(TASK_COLUMNS)).to_pylist()
    scored = inputs.table("scored").select(list(SCORED_COLUMNS)).to_pylist()
    quarantine: list[dict[str, Any]] = []
    metrics: dict[str, float] = {
        "tasks_in": 0.0,
        "candidates_in": float(len(scored)),
        "candidates_duplicate": 0.0,
        "candidates_capped": 0.0,
        "lists_out": 0.0,
        "lists_unscored": 0.0,
        "responses_out": 0.0,
        "pairs_out": 0.0,
        "groups_out": 0.0,
        **{f"dropped_{reason}": 0.0 for reason in DropReason},
    }
    by_task = _candidates_by_task(scored, {t["task_id"] for t in tasks}, quarantine)
    normalize = NORMALIZERS[config.dedupe]
    listwise, pairs, groups = [], [], []
    seen: set[str] = set()
    for task in tasks:
        task_id = task["task_id"]
        if task_id in seen:
            quarantine.append(quarantine_row(task_id, "duplicate_task", "task_id appears twice in the shard's tasks", task))
            continue
        seen.add(task_id)
        metrics["tasks_in"] += 1
        cands = _drop_null_rewards_in_scored_list(by_task.get(task_id, []), quarantine)
        ranked = rank_candidates(
            cands,
            origin_order=config.origin_order,
            normalize=normalize,
            min_spread=config.min_spread,
            max_list_len=config.max_list_len,
        )
        if not isinstance(ranked, RankedList):
            metrics[f"dropped_{ranked}"] += 1
            continue
        metrics["lists_out"] += 1
        metrics["lists_unscored"] += not ranked.scored
        metrics["responses_out"] += len(ranked.candidates)
        metrics["candidates_duplicate"] += ranked.n_duplicates
        metrics["candidates_capped"] += ranked.n_capped
        listwise.append(listwise_row(task_id, task["task_type"], task["prompt"], ranked))
        pairs.extend(
            pair_rows(
                task_id,
                task["prompt"],
                ranked,
                mode=config.pairs_mode,
                min_margin=config.min_margin,
                origin_order=config.origin_order,
            )
        )
        group = group_row(task_id, task["prompt"], ranked, group_k=config.group_k, origin_order=config.origin_order)
        if group is not None:
            groups.append(group)
    metrics["pairs_out"] = float(len(pairs))
    metrics["groups_out"] = float(len(groups))
    return ShardResult(
        tables={
            "listwise": validate_table(listwise, "listwise"),
            "pairs": validate_table(pairs, "pairs"),
            "groups": validate_table(groups, "groups"),
        },
        quarantine=quarantine,
        metrics=metrics,
    )
