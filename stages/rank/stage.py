"""The rank stage's shard function: scored candidates in, ``listwise`` / ``pairs`` / ``groups`` out.

Every task of the shard ends up either as one ``listwise`` row or counted under
``dropped_<reason>`` in the metrics (a filter, not bad input, so no quarantine rows), so that
``tasks_in == lists_out + sum(dropped_*)``. Bad input is quarantined: a scored row whose task is not
in the shard, an unknown origin, a non-finite reward, a null reward among rewarded candidates, a
repeated task_id.

With ``[rank] review`` set, :func:`prepare` reads the review file once in the driver, checks it against
the run's tasks and scored candidates (a bad file fails before any rank shard is written) and adds its
content hash to the fingerprint; each shard then drops or reorders the reviewed lists
(:mod:`stages.rank.review`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Sequence

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import ORIGINS, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec, quarantine_row
from stages.rank.config import NORMALIZERS, DropReason, OrderBy, RankConfig
from stages.rank.emit import group_row, listwise_row, pair_rows
from stages.rank.ordering import Candidate, RankedList, rank_candidates, reviewed_list
from stages.rank.review import ReviewDecision, ReviewEntry, ReviewFlag, check_review, read_review

__all__ = ["SPEC", "TASK_COLUMNS", "SCORED_COLUMNS", "prepare", "run_shard"]

TASK_COLUMNS = ("task_id", "task_type", "prompt")  # never the image: ranking does not need it
SCORED_COLUMNS = ("task_id", "cand_id", "origin", "text", "reward", "logprob_sum", "n_tokens", "token_ids")


def _bad_scored_row(row: dict[str, Any], task_ids: set[str]) -> tuple[QuarantineReason, str] | None:
    """Return (reason, message) if a scored row cannot be ranked, else ``None``."""
    if row["task_id"] not in task_ids:
        return QuarantineReason.UNKNOWN_TASK, f"task_id {row['task_id']!r} is not in this shard's tasks"
    if row["origin"] not in ORIGINS:
        return QuarantineReason.UNKNOWN_ORIGIN, f"origin {row['origin']!r} is not one of {list(ORIGINS)}"
    if row["reward"] is not None and not math.isfinite(row["reward"]):
        return QuarantineReason.INVALID_REWARD, f"reward {row['reward']!r} is not a finite number"
    return None


def _candidates_by_task(
    scored: list[dict[str, Any]], task_ids: set[str], quarantine: list[dict[str, Any]]
) -> dict[str, list[Candidate]]:
    """Group scored rows by task, quarantining rows that cannot be ranked."""
    by_task: dict[str, list[Candidate]] = defaultdict(list)
    for row in scored:
        bad = _bad_scored_row(row, task_ids)
        if bad is not None:
            quarantine.append(quarantine_row(row["cand_id"], *bad, record=row))
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
                quarantine_row(c.cand_id, QuarantineReason.MISSING_REWARD, "reward is null while other candidates of its task have one")
            )
    return rewarded


def _new_metrics(n_candidates: int) -> dict[str, float]:
    """Every counter the stage reports, zero included, so that the report lists each drop reason."""
    names = ["tasks_in", "candidates_excluded_origin", "candidates_duplicate", "candidates_capped", "lists_out",
             "lists_unscored", "responses_out"]
    names += ["review_reordered", *(f"review_{flag}" for flag in ReviewFlag)]
    return {"candidates_in": float(n_candidates), **dict.fromkeys(names, 0.0), **{f"dropped_{r}": 0.0 for r in DropReason}}


def _rank_task(
    cands: list[Candidate], entry: ReviewEntry | None, config: RankConfig, metrics: dict[str, float]
) -> RankedList | DropReason:
    """Rank one task's candidates, or follow the person's review of it (drop, or their order)."""
    if entry is not None:
        for flag in entry.flags:
            metrics[f"review_{flag}"] += 1
        if entry.decision is ReviewDecision.DROP:
            return DropReason.REVIEW
        if entry.order is not None:
            ranked = reviewed_list(cands, entry.order)
            if len(ranked.candidates) >= 2:
                metrics["review_reordered"] += 1
                return ranked
    return rank_candidates(
        cands,
        origin_order=config.origin_order,
        normalize=NORMALIZERS[config.dedupe],
        min_spread=config.min_spread,
        max_list_len=config.max_list_len,
        by_origin=config.order_by == OrderBy.ORIGIN,
    )


def _emit(task: dict[str, Any], ranked: RankedList, config: RankConfig, out: dict[str, list[dict[str, Any]]]) -> None:
    """Append the listwise row, the pairs and the group of one kept list to ``out``."""
    task_id, prompt = task["task_id"], task["prompt"]
    out["listwise"].append(listwise_row(task_id, task["task_type"], prompt, ranked))
    out["pairs"].extend(
        pair_rows(
            task_id, prompt, ranked, mode=config.pairs_mode, min_margin=config.min_margin, origin_order=config.origin_order
        )
    )
    group = group_row(task_id, prompt, ranked, group_k=config.group_k, origin_order=config.origin_order)
    if group is not None:
        out["groups"].append(group)


def run_shard(inputs: ShardInputs, output: ShardOutput, config: RankConfig) -> ShardResult:
    """Rank every task of the shard; return the three tables, quarantined rows and per-reason counters."""
    tasks = inputs.table("tasks").select(list(TASK_COLUMNS)).to_pylist()
    scored = inputs.table("scored").select(list(SCORED_COLUMNS)).to_pylist()
    quarantine: list[dict[str, Any]] = []
    metrics = _new_metrics(len(scored))
    by_task = _candidates_by_task(scored, {t["task_id"] for t in tasks}, quarantine)
    review = config.loaded_review()
    entries = review.entries if review is not None else {}
    out: dict[str, list[dict[str, Any]]] = {"listwise": [], "pairs": [], "groups": []}
    seen: set[str] = set()
    for task in tasks:
        if task["task_id"] in seen:
            quarantine.append(quarantine_row(task["task_id"], QuarantineReason.DUPLICATE_TASK, "task_id appears twice in the shard"))
            continue
        seen.add(task["task_id"])
        metrics["tasks_in"] += 1
        cands = by_task.get(task["task_id"], [])
        kept = [c for c in cands if c.origin in config.list_origins]  # the list composition ([rank] list_origins)
        metrics["candidates_excluded_origin"] += len(cands) - len(kept)
        ranked = _rank_task(_drop_null_rewards_in_scored_list(kept, quarantine), entries.get(task["task_id"]), config, metrics)
        if not isinstance(ranked, RankedList):
            metrics[f"dropped_{ranked}"] += 1
            continue
        metrics["lists_out"] += 1
        metrics["lists_unscored"] += not ranked.scored
        metrics["responses_out"] += len(ranked.candidates)
        metrics["candidates_duplicate"] += ranked.n_duplicates
        metrics["candidates_capped"] += ranked.n_capped
        _emit(task, ranked, config, out)
    metrics["pairs_out"] = float(len(out["pairs"]))
    metrics["groups_out"] = float(len(out["groups"]))
    return ShardResult(
        tables={name: validate_table(rows, name) for name, rows in out.items()},
        quarantine=quarantine,
        metrics=metrics,
    )


def prepare(
    config: RankConfig, read_input: Callable[[str, Sequence[str]], pa.Table] | None
) -> tuple[RankConfig, dict[str, Any]]:
    """Read ``[rank] review`` once (driver side) and return the config the shards get, with the review
    attached, plus what the fingerprint adds (the file's content hash, in place of its path).

    ``read_input(table, columns)`` reads a whole input table; with it the review is checked against the
    run (unknown task ids, orders naming responses a list does not have), without it (a preflight before
    anything is written) only the file itself is checked. Raises :class:`ConfigError` naming the line.
    """
    if config.review is None:
        return config, {}
    review = read_review(config.review)  # read afresh: the file may have changed since config was loaded
    if read_input is not None:
        task_ids = read_input("tasks", ["task_id"])["task_id"].to_pylist()
        scored = read_input("scored", ["task_id", "cand_id"])
        cand_ids: dict[str, set[str]] = defaultdict(set)
        for task_id, cand_id in zip(scored["task_id"].to_pylist(), scored["cand_id"].to_pylist()):
            cand_ids[task_id].add(cand_id)
        check_review(review, task_ids, cand_ids)
    prepared = config.model_copy()
    prepared._review = review
    return prepared, {"review": f"sha256:{review.sha256}"}


SPEC = StageSpec(
    name="rank",
    config_cls=RankConfig,
    reads=("tasks", "scored"),
    writes=("listwise", "pairs", "groups"),
    run_shard=run_shard,
    prepare=prepare,
    description="Sort scored candidates per task (reward, then origin, then log-prob), dedupe, drop lists "
    "with too little reward spread, and write listwise rows, preference pairs and mDPO groups.",
)
