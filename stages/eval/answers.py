"""Answer a model on held-out tasks and score every answer with the pipeline's own rewards.

For one model: a greedy answer per task (``decoding = "greedy"``, temperature 0) and ``n`` sampled
answers (``decoding = "sample"``), through the same :class:`~stages.vlm.requests.Sampler` and
prompt format the sample stage uses; each answer is scored with the reward its task type gets in
``[score]`` and with the task type's extra metrics (:data:`TASK_METRICS`). The rows follow the
``eval`` table (``data_schemas.EVAL``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from stages.base import quarantine_row
from stages.lib.rewards import REWARDS, GroundTruth, GroundTruthError, RewardKind, RewardResult
from stages.lib.rewards.ocr import prepare_ocr, score_ocr
from stages.sample.config import SamplingSettings
from stages.sample.rows import items_from_tasks, sample_rows
from stages.vlm.requests import Sampler
from stages.score.config import ScoreConfig

__all__ = ["TASK_METRICS", "iou_accuracy", "ocr_metrics", "answer_and_score"]

GREEDY, SAMPLE = "greedy", "sample"
_ORIGIN: Final[str] = "eval"  # enters the per-request seeds, so eval answers never reuse the sample stage's draws


def iou_accuracy(result: RewardResult, row: dict[str, Any]) -> dict[str, float]:
    """Grounding: ``iou_at_0.5`` is 1 when the answer has exactly the ground truth's number of boxes and each
    matched pair overlaps with IoU >= 0.5 (for one box: RefCOCO's Acc@0.5), else 0."""
    ious = result.detail.get("ious") or []
    n_pred, n_gt = result.detail.get("n_pred"), result.detail.get("n_gt")
    correct = result.parse_ok and n_pred == n_gt and len(ious) == n_gt and bool(ious) and min(ious) >= 0.5
    return {"iou_at_0.5": float(correct)}


def ocr_metrics(result: RewardResult, row: dict[str, Any]) -> dict[str, float]:
    """OCR: ``edit_similarity`` = 1 − normalized edit distance (case-sensitive) and ``anls`` (DocVQA's ANLS:
    case-insensitive, 0 at a normalized distance >= 0.5), both against the best of the task's references,
    whatever reward kind ``[score]`` gives OCR."""
    refs = [r for r in [row.get("answer"), *(row.get("answers") or [])] if r]
    text = result.detail.get("_text", "")
    edit = score_ocr(text, prepare_ocr(refs, ignore_case=False)).reward
    anls = score_ocr(text, prepare_ocr(refs, anls=True, anls_threshold=0.5)).reward
    return {"edit_similarity": edit, "anls": anls}


def vqa_accuracy(result: RewardResult, row: dict[str, Any]) -> dict[str, float]:
    """VQA: ``accuracy`` is the VQA reward itself (soft accuracy over annotators, or the choice letter)."""
    return {"accuracy": result.reward}


# Extra metrics per task type, beside the reward and the parse rate every type reports.
TASK_METRICS: Final[dict[str, Callable[[RewardResult, dict[str, Any]], dict[str, float]]]] = {
    "grounding": iou_accuracy,
    "ocr": ocr_metrics,
    "vqa": vqa_accuracy,
}


def _truths(tasks: pa.Table, score: ScoreConfig) -> tuple[dict[str, tuple[RewardKind, Any]], list[dict[str, Any]]]:
    """Each task's reward kind and prepared ground truth; tasks whose ground truth cannot be scored are quarantined."""
    options = score.reward_options()
    out: dict[str, tuple[RewardKind, Any]] = {}
    quarantine = []
    for row in tasks.drop_columns(["image"]).to_pylist():
        kind = score.kind_for(row["task_type"])
        if kind is RewardKind.NONE:
            out[row["task_id"]] = (kind, None)
            continue
        try:
            out[row["task_id"]] = (kind, REWARDS[kind].prepare(GroundTruth.from_row(row), options))
        except GroundTruthError as exc:
            record = {k: row.get(k) for k in ("task_id", "task_type", "prompt", "source")}
            quarantine.append(quarantine_row(row["task_id"], QuarantineReason.BAD_GROUND_TRUTH, str(exc), record))
    return out, quarantine


def _score_rows(answers: list[dict[str, Any]], tasks: dict[str, dict[str, Any]], truths, score: ScoreConfig) -> None:
    """Fill reward, reward_kind, parse_ok and metrics of each answer row in place (one batch per reward kind)."""
    options = score.reward_options()
    by_kind: dict[RewardKind, list[dict[str, Any]]] = {}
    for row in answers:
        kind, _ = truths[row["task_id"]]
        row["reward_kind"] = kind.value
        if kind is RewardKind.NONE:
            row.update(reward=None, parse_ok=None, metrics="{}")
        else:
            by_kind.setdefault(kind, []).append(row)
    for kind, rows in by_kind.items():
        results = REWARDS[kind].score_batch([r["text"] or "" for r in rows], [truths[r["task_id"]][1] for r in rows], options)
        for row, result in zip(rows, results):
            task = tasks[row["task_id"]]
            extra = TASK_METRICS.get(task["task_type"])
            detail = {**result.detail, "_text": row["text"] or ""}
            metrics = extra(RewardResult(result.reward, result.parse_ok, detail), task) if extra else {}
            row.update(reward=result.reward, parse_ok=result.parse_ok, metrics=json.dumps(metrics, sort_keys=True))


def answer_and_score(
    sampler: Sampler,
    tasks: pa.Table,
    *,
    role: str,
    greedy: bool,
    settings: SamplingSettings,
    score: ScoreConfig,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Answer every task with ``sampler`` (greedy if asked, and ``settings.n`` samples) and score the answers.

    Returns ``(eval rows, quarantine rows)``; a task whose image does not decode, whose request the backend
    rejects or whose ground truth cannot be scored is quarantined with no rows.
    """
    truths, quarantine = _truths(tasks, score)
    usable = tasks.filter(pa.array([t in truths for t in tasks.column("task_id").to_pylist()], pa.bool_()))
    items, rejected = items_from_tasks(usable)
    quarantine += rejected
    runs = [(SAMPLE, settings)]
    if greedy:
        runs.insert(0, (GREEDY, SamplingSettings(n=1, temperature=0.0, top_p=1.0, max_tokens=settings.max_tokens, seed=settings.seed)))
    answers: list[dict[str, Any]] = []
    failed: set[str] = set()
    for decoding, run_settings in runs:
        rows, errors = sample_rows(sampler, items, run_settings, origin=_ORIGIN)
        for err in errors:
            if err["row_ref"] not in failed:
                failed.add(err["row_ref"])
                quarantine.append(err)
        for row in rows:
            answers.append(
                {
                    "model_role": role,
                    "model": row["model"],
                    "task_id": row["task_id"],
                    "decoding": decoding,
                    "sample_index": row["sample_index"],
                    "text": row["text"],
                    "n_tokens": row["n_tokens"],
                }
            )
    answers = [a for a in answers if a["task_id"] not in failed]  # a task counts with all its answers or none
    by_id = {r["task_id"]: r for r in usable.drop_columns(["image"]).to_pylist()}
    for row in answers:
        row["task_type"] = by_id[row["task_id"]]["task_type"]
    _score_rows(answers, by_id, truths, score)
    return answers, quarantine
