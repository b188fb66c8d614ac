"""The score stage: every candidate gets a discriminative reward against its task's ground truth.

Reads ``tasks`` (ground-truth columns only; images are never decoded) and ``candidates``; writes
``scored`` = candidates + ``reward`` (in [0, 1], null for task types without a reward, e.g.
captions), ``reward_kind``, ``parse_ok`` and ``detail`` (JSON). The rewards themselves live in
:mod:`stages.rewards` and are re-exported here.

Quarantined, never dropped silently: a candidate whose ``task_id`` is not in the shard's tasks
(``unknown_task``), whose task has an unknown ``task_type`` (``unknown_task_type``), or whose
task's ground truth cannot be scored against (``bad_ground_truth``: a grounding task without
boxes, an empty OCR text, a multiple-choice answer that is none of the choices).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import pyarrow as pa
from pydantic import Field, field_validator

from data_schemas.tables import TASK_TYPES, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageConfig, StageSpec, quarantine_row
from stages.rewards import (
    BOX_FORMATS,
    DEFAULT_REWARD_BY_TASK,
    REWARDS,
    BoxFormat,
    GroundTruth,
    GroundTruthError,
    RewardKind,
    RewardOptions,
    RewardResult,
    SoftAccuracy,
    encode_detail,
    gc_paused,
    get_reward,
    iou_reward,
    ocr_reward,
    parse_boxes,
    reward_kind_for,
    score_batch,
    vqa_reward,
)

__all__ = [
    "ScoreConfig",
    "run_shard",
    "SPEC",
    "TASK_COLUMNS",
    # re-exported from stages.rewards
    "BOX_FORMATS",
    "DEFAULT_REWARD_BY_TASK",
    "REWARDS",
    "GroundTruth",
    "GroundTruthError",
    "RewardKind",
    "RewardOptions",
    "RewardResult",
    "get_reward",
    "iou_reward",
    "ocr_reward",
    "parse_boxes",
    "reward_kind_for",
    "score_batch",
    "vqa_reward",
]

TASK_COLUMNS: tuple[str, ...] = ("task_id", "task_type", "width", "height", "answer", "boxes", "answers", "choices")


class ScoreConfig(StageConfig):
    """``[score]``: which reward each task type gets and how outputs are parsed and normalized."""

    reward_kinds: dict[str, RewardKind] = Field(
        default_factory=dict,
        description=(
            "Per task type override of the reward kind, e.g. {ocr = \"anls\"}. Task types: "
            + ", ".join(TASK_TYPES)
            + f"; kinds: {', '.join(RewardKind)}. Defaults: "
            + ", ".join(f"{t} -> {k}" for t, k in DEFAULT_REWARD_BY_TASK.items())
            + "."
        ),
    )
    box_format: BoxFormat = Field(
        "auto",
        description=(
            "Coordinate scale of predicted boxes: pixel, norm1 (0-1), norm1000 (0-1000, Qwen-VL) or auto "
            "(Qwen box tags -> 0-1000; all coordinates <= 1 -> 0-1; a coordinate beyond the image but all "
            "<= 1000 -> 0-1000; else pixels)."
        ),
    )
    ocr_ignore_case: bool | None = Field(
        None,
        description="Compare OCR text case-insensitively. Unset: case-sensitive for 'ocr', case-insensitive for 'anls' (DocVQA).",
    )
    ocr_normalize_whitespace: bool = Field(
        True, description="Collapse whitespace runs to one space and strip the ends before comparing OCR text."
    )
    anls_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="ANLS: a normalized edit distance at or above this scores 0 (reward kind 'anls')."
    )
    vqa_soft_accuracy: SoftAccuracy = Field(
        "min3",
        description=(
            "VQA soft accuracy with several annotator answers: min3 = min(#matching / 3, 1); "
            "leave_one_out = the official VQA average of that over annotator subsets."
        ),
    )
    vqa_extended_numbers: bool = Field(
        False, description="Also map number words eleven..twenty to digits (the official VQA map stops at ten)."
    )

    @field_validator("reward_kinds")
    @classmethod
    def _known_task_types(cls, value: dict[str, RewardKind]) -> dict[str, RewardKind]:
        unknown = sorted(set(value) - set(TASK_TYPES))
        if unknown:
            raise ValueError(
                f"score.reward_kinds has unknown task type(s) {unknown}; use one of: {', '.join(TASK_TYPES)}"
            )
        return value

    def reward_options(self) -> RewardOptions:
        """The reward settings of this config, in the form the reward functions take."""
        return RewardOptions(
            box_format=self.box_format,
            ocr_ignore_case=self.ocr_ignore_case,
            ocr_normalize_whitespace=self.ocr_normalize_whitespace,
            anls_threshold=self.anls_threshold,
            vqa_soft_accuracy=self.vqa_soft_accuracy,
            vqa_extended_numbers=self.vqa_extended_numbers,
        )

    def kind_for(self, task_type: str) -> RewardKind:
        """The reward kind of ``task_type`` under this config (``KeyError`` for an unknown type)."""
        return reward_kind_for(task_type, self.reward_kinds)


class _Task(NamedTuple):
    """How one task's candidates are scored: a kind and its prepared truth, or why they cannot be."""

    kind: RewardKind | None
    truth: Any = None
    reason: str = ""
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
            out[tid] = _Task(None, reason="unknown_task_type", message=str(exc.args[0]))
            continue
        if kind is RewardKind.NONE:
            out[tid] = _Task(kind, message=f"no discriminative reward for task type {task_type}")
            continue
        try:
            out[tid] = _Task(kind, REWARDS[kind].prepare(GroundTruth.from_row(row), options))
        except GroundTruthError as exc:
            out[tid] = _Task(None, reason="bad_ground_truth", message=f"task {tid} ({task_type}, reward {kind}): {exc}")
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


def run_shard(inputs: ShardInputs, output: ShardOutput, config: ScoreConfig) -> ShardResult:
    """Score one shard of candidates against the ground truth in the shard's tasks: one batched
    reward call per reward kind; unscorable candidates go to quarantine with a reason."""
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
            task = _Task(None, reason="unknown_task", message=f"candidate {cand_ids[i]} refers to task_id {tid!r}, which is not in this shard's tasks")
        if task.kind is None:
            quarantine.append(quarantine_row(cand_ids[i], task.reason, task.message, candidates.slice(i, 1).to_pylist()[0]))
            keep[i] = False
        elif task.kind is RewardKind.NONE:
            details[i] = encode_detail({"reason": task.message})
        else:
            by_kind[task.kind].append(i)
            kinds[i] = task.kind.value

    metrics: dict[str, float] = {
        "rows": float(sum(keep)),
        "quarantined": float(len(quarantine)),
        "none.rows": float(sum(keep) - sum(map(len, by_kind.values()))),
    }
    for kind, rows in by_kind.items():
        with gc_paused():
            scored = REWARDS[kind].score_batch([texts[i] or "" for i in rows], [tasks[task_ids[i]].truth for i in rows], options)
            for i, res in zip(rows, scored):
                results[i] = res
                details[i] = encode_detail(res.detail)
        # Sums and counts only: the runner adds a stage's metrics over its shards (mean = reward_sum / rows).
        metrics[f"{kind}.rows"] = float(len(rows))
        metrics[f"{kind}.reward_sum"] = float(sum(r.reward for r in scored))
        metrics[f"{kind}.parse_failures"] = float(sum(not r.parse_ok for r in scored))
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
