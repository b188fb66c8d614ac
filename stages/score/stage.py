"""The score stage: every candidate gets a discriminative reward against its task's ground truth.

Reads ``tasks`` (ground-truth columns only; images are never decoded) and ``candidates``; writes
``scored`` = candidates + ``reward`` (in [0, 1], null for task types without a reward, e.g.
captions), ``reward_kind``, ``parse_ok`` and ``detail`` (JSON). The rewards themselves live in
:mod:`stages.lib.rewards`.

Quarantined, never dropped silently: a candidate whose ``task_id`` is not in the shard's tasks
(``unknown_task``), whose task has an unknown ``task_type`` (``unknown_task_type``), or whose
task's ground truth cannot be scored against (``bad_ground_truth``: a grounding task without
boxes, an empty OCR text, a multiple-choice answer that is none of the choices).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec, quarantine_row
from stages.lib.errors import first_line
from stages.lib.rewards import REWARDS, GroundTruth, GroundTruthError, RewardKind, RewardResult, encode_detail, gc_paused, score_batch
from stages.score.config import ScoreConfig

__all__ = ["SPEC", "TASK_COLUMNS", "run_shard"]

TASK_COLUMNS: tuple[str, ...] = ("task_id", "task_type", "width", "height", "answer", "boxes", "answers", "choices")


class _Task(NamedTuple):
    """How one task's candidates are scored: a kind and its prepared truth, or why they cannot be."""

    kind: RewardKind | None
    truth: Any = None
    reason: QuarantineReason | None = None
    message: str = ""


def _prepare_tasks(tasks: pa.Table, config: ScoreConfig) -> dict[str, _Task]:
    """Read each task's ground truth once (the first row wins if a task_id repeats)."""
    options = config.reward_options()
    out: dict[str, _Task] = {}
    for row in tasks.select(list(TASK_COLUMNS)).to_pylist():
        tid, task_type = row["task_id"], row["task_type"]
        if tid in out:
            continue
        try:
            kind = config.kind_for(task_type)
        except KeyError as exc:
            out[tid] = _Task(None, reason=QuarantineReason.UNKNOWN_TASK_TYPE, message=str(exc.args[0]))
            continue
        if kind is RewardKind.NONE:
            out[tid] = _Task(kind, message=f"no discriminative reward for task type {task_type}")
            continue
        try:
            out[tid] = _Task(kind, REWARDS[kind].prepare(GroundTruth.from_row(row), options))
        except GroundTruthError as exc:
            out[tid] = _Task(None, reason=QuarantineReason.BAD_GROUND_TRUTH, message=f"task {tid} ({task_type}, reward {kind}): {exc}")
    return out


def _scored_table(candidates: pa.Table, keep: list[bool], results: list[RewardResult | None], kinds: list[str], details: list[str | None]) -> pa.Table:
    idx = [i for i, k in enumerate(keep) if k]
    table = candidates.filter(pa.array(keep, pa.bool_())) if len(idx) < len(keep) else candidates
    table = (
        table.append_column("reward", pa.array([r.reward if (r := results[i]) is not None else None for i in idx], pa.float64()))
        .append_column("reward_kind", pa.array([kinds[i] for i in idx], pa.string()))
        .append_column("parse_ok", pa.array([r.parse_ok if (r := results[i]) is not None else None for i in idx], pa.bool_()))
        .append_column("detail", pa.array([details[i] for i in idx], pa.string()))
    )
    return validate_table(table, "scored")


def _score_rows(kind: RewardKind, texts: list[str], truths: list[Any], options: Any) -> list[RewardResult | str]:
    """Score the outputs in one batched call; if it raises, score them one by one so that only the outputs the
    reward fails on are lost (each returned as its error's first line)."""
    spec = REWARDS[kind]
    try:
        return list(spec.score_batch(texts, truths, options))
    except Exception:  # untrusted model output: find the rows, a shard fails only for what is not about one row
        pass
    out: list[RewardResult | str] = []
    for text, truth in zip(texts, truths):
        try:
            out.append(spec.score_batch([text], [truth], options)[0])
        except Exception as exc:
            out.append(first_line(exc))
    return out


def run_shard(inputs: ShardInputs, output: ShardOutput, config: ScoreConfig) -> ShardResult:
    """Score one shard of candidates against the ground truth in the shard's tasks: one batched
    reward call per reward kind; unscorable candidates go to quarantine with a reason (an output the reward
    raises on: ``reward_failed``)."""
    candidates = inputs.table("candidates")
    tasks = _prepare_tasks(inputs.table("tasks"), config)
    options = config.reward_options()
    task_ids = candidates.column("task_id").to_pylist()
    texts = candidates.column("text").to_pylist()
    cand_ids = candidates.column("cand_id").to_pylist()
    n = len(task_ids)

    keep = [True] * n
    results: list[RewardResult | None] = [None] * n
    kinds = [RewardKind.NONE.value] * n
    details: list[str | None] = [None] * n
    by_kind: dict[RewardKind, list[int]] = defaultdict(list)
    quarantine = []
    for i, tid in enumerate(task_ids):
        task = tasks.get(tid)
        if task is None:
            message = f"candidate {cand_ids[i]} refers to task_id {tid!r}, which is not in this shard's tasks"
            task = _Task(None, reason=QuarantineReason.UNKNOWN_TASK, message=message)
        if task.kind is None:
            quarantine.append(quarantine_row(cand_ids[i], task.reason, task.message, candidates.slice(i, 1).to_pylist()[0]))
            keep[i] = False
        elif task.kind is RewardKind.NONE:
            details[i] = encode_detail({"reason": task.message})
        else:
            by_kind[task.kind].append(i)
            kinds[i] = task.kind.value

    metrics: dict[str, float] = {"none.rows": float(sum(keep) - sum(map(len, by_kind.values())))}
    for kind, rows in by_kind.items():
        with gc_paused():
            outcomes = _score_rows(kind, [texts[i] or "" for i in rows], [tasks[task_ids[i]].truth for i in rows], options)
        scored = []
        for i, res in zip(rows, outcomes):
            if isinstance(res, str):  # the reward raised on this output alone
                message = f"reward {kind} failed on this output: {res}"
                record = candidates.slice(i, 1).to_pylist()[0]
                quarantine.append(quarantine_row(cand_ids[i], QuarantineReason.REWARD_FAILED, message, record))
                keep[i] = False
                continue
            results[i] = res
            details[i] = encode_detail(res.detail)
            scored.append(res)
        # Sums and counts only: the runner adds a stage's metrics over its shards (mean = reward_sum / rows).
        metrics[f"{kind}.rows"] = float(len(scored))
        metrics[f"{kind}.reward_sum"] = float(sum(r.reward for r in scored))
        metrics[f"{kind}.parse_failures"] = float(sum(not r.parse_ok for r in scored))
    metrics = {"rows": float(sum(keep)), "quarantined": float(len(quarantine)), **metrics}
    table = _scored_table(candidates, keep, results, kinds, details)
    return ShardResult(tables={"scored": table}, quarantine=quarantine, metrics=metrics)


SPEC = StageSpec(
    name="score",
    config_cls=ScoreConfig,
    reads=("tasks", "candidates"),
    writes=("scored",),
    run_shard=run_shard,
    description=(
        "Discriminative rewards against ground truth: IoU for grounding (any box format, Hungarian "
        "matching), 1 - normalized edit distance or ANLS for OCR, VQA soft accuracy or "
        "multiple-choice letter for VQA; unparseable output scores 0 with parse_ok false."
    ),
)
