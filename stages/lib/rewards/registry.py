"""Reward kinds, what each reads from a task, and which one a task type gets by default.

Every kind is a :class:`RewardSpec`: ``prepare`` checks and normalizes a task's ground truth once
(raising :class:`GroundTruthError` when it is unusable), ``score_batch`` scores many outputs
against prepared truths. What a kind reads from the task row:
- ``iou``: ``boxes`` (pixel xyxy), ``width``, ``height``;
- ``ocr`` / ``anls``: ``answer`` plus any ``answers`` (the best-matching reference counts);
- ``vqa``: ``answers`` (annotator votes) or else ``answer``; with ``choices``, ``answer`` (or the
  first of ``answers``) names the correct option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stages.lib.rewards.iou import prepare_iou, score_iou_batch
from stages.lib.rewards.ocr import prepare_ocr, score_ocr_batch
from stages.lib.rewards.result import RewardResult
from stages.lib.rewards.vqa import prepare_vqa, score_vqa_batch

__all__ = [
    "RewardKind",
    "RewardOptions",
    "GroundTruth",
    "RewardSpec",
    "REWARDS",
    "DEFAULT_REWARD_BY_TASK",
    "get_reward",
    "reward_kind_for",
    "score_batch",
]


class RewardKind(StrEnum):
    """The discriminative rewards; ``none`` marks a task type without one (captions)."""

    IOU = "iou"
    OCR = "ocr"
    ANLS = "anls"
    VQA = "vqa"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RewardOptions:
    """Settings shared by every reward kind (the score stage builds them from its config)."""

    box_format: str = "auto"
    ocr_ignore_case: bool | None = None
    ocr_normalize_whitespace: bool = True
    anls_threshold: float = 0.5
    vqa_soft_accuracy: str = "min3"
    vqa_extended_numbers: bool = False


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """The ground-truth columns of one ``tasks`` row (no image)."""

    width: int | None = None
    height: int | None = None
    answer: str | None = None
    boxes: Sequence[Sequence[float]] | None = None
    answers: Sequence[str] | None = None
    choices: Sequence[str] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> GroundTruth:
        """Build from a ``tasks`` row dict; absent keys are ``None``."""
        return cls(row.get("width"), row.get("height"), row.get("answer"), row.get("boxes"), row.get("answers"), row.get("choices"))


def _text_refs(gt: GroundTruth) -> list[str]:
    return ([gt.answer] if gt.answer is not None else []) + list(gt.answers or [])


def _prepare_vqa(gt: GroundTruth, o: RewardOptions) -> Any:
    if gt.choices:
        answers = [gt.answer] if gt.answer else list(gt.answers or [])
    else:
        answers = list(gt.answers) if gt.answers else ([gt.answer] if gt.answer is not None else [])
    return prepare_vqa(answers, gt.choices, soft=o.vqa_soft_accuracy, extended_numbers=o.vqa_extended_numbers)


@dataclass(frozen=True)
class RewardSpec:
    """One reward kind: prepare a task's ground truth, score outputs against prepared truths."""

    kind: RewardKind
    prepare: Callable[[GroundTruth, RewardOptions], Any]
    score_batch: Callable[[Sequence[str], Sequence[Any], RewardOptions], list[RewardResult]]
    description: str


REWARDS: dict[RewardKind, RewardSpec] = {
    RewardKind.IOU: RewardSpec(
        RewardKind.IOU,
        lambda gt, o: prepare_iou(gt.boxes, gt.width, gt.height),
        lambda texts, truths, o: score_iou_batch(texts, truths, o.box_format),
        "IoU of the parsed box(es) with the ground-truth boxes, Hungarian-matched",
    ),
    RewardKind.OCR: RewardSpec(
        RewardKind.OCR,
        lambda gt, o: prepare_ocr(_text_refs(gt), ignore_case=o.ocr_ignore_case, normalize_whitespace=o.ocr_normalize_whitespace),
        lambda texts, truths, o: score_ocr_batch(texts, truths),
        "1 - normalized Levenshtein distance to the ground-truth text",
    ),
    RewardKind.ANLS: RewardSpec(
        RewardKind.ANLS,
        lambda gt, o: prepare_ocr(_text_refs(gt), anls=True, anls_threshold=o.anls_threshold,
                                  ignore_case=o.ocr_ignore_case, normalize_whitespace=o.ocr_normalize_whitespace),
        lambda texts, truths, o: score_ocr_batch(texts, truths),
        "ANLS: 1 - normalized Levenshtein distance, 0 below the threshold",
    ),
    RewardKind.VQA: RewardSpec(
        RewardKind.VQA,
        _prepare_vqa,
        lambda texts, truths, o: score_vqa_batch(texts, truths),
        "VQA accuracy: normalized soft accuracy, exact match, or multiple-choice letter",
    ),
}

DEFAULT_REWARD_BY_TASK: dict[str, RewardKind] = {
    "grounding": RewardKind.IOU,
    "ocr": RewardKind.OCR,
    "vqa": RewardKind.VQA,
    "caption": RewardKind.NONE,
}


def get_reward(kind: str) -> RewardSpec:
    """Return the spec of reward ``kind``; an unknown kind (or ``none``) raises ``KeyError``
    listing the available ones."""
    try:
        return REWARDS[RewardKind(kind)]
    except (ValueError, KeyError):
        raise KeyError(f"unknown reward kind {kind!r}; available: {', '.join(REWARDS)}") from None


def reward_kind_for(task_type: str, overrides: dict[str, RewardKind] | None = None) -> RewardKind:
    """Return the reward kind of ``task_type``: the override if any, else the default mapping.
    An unknown task type raises ``KeyError`` listing the known ones."""
    if overrides and task_type in overrides:
        return RewardKind(overrides[task_type])
    try:
        return DEFAULT_REWARD_BY_TASK[task_type]
    except KeyError:
        raise KeyError(f"unknown task type {task_type!r}; known: {', '.join(DEFAULT_REWARD_BY_TASK)}") from None


def score_batch(
    kind: str, texts: Sequence[str], ground_truths: Sequence[GroundTruth], options: RewardOptions = RewardOptions()
) -> list[RewardResult]:
    """Score ``texts[i]`` against ``ground_truths[i]`` with reward ``kind``, preparing each distinct
    ground-truth object once. Raises :class:`GroundTruthError` on unusable ground truth (the score
    stage catches it per task and quarantines instead)."""
    spec = get_reward(kind)
    cache: dict[int, Any] = {}
    truths = []
    for gt in ground_truths:
        key = id(gt)
        if key not in cache:
            cache[key] = spec.prepare(gt, options)
        truths.append(cache[key])
    return spec.score_batch(texts, truths, options)
