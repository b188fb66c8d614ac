"""IoU reward for grounding: parse the boxes, match them one-to-one with the ground truth.

reward = sum of matched IoUs / max(#predicted, #ground truth), the matching maximizing the sum
(Hungarian, ``scipy.optimize.linear_sum_assignment``). One box against one box is plain IoU; a
missing box and an extra box both cost. Boxes the answer spelled out but that were unusable
(NaN, zero area) count as predicted boxes with IoU 0.

``detail``: ``format`` (scale applied), ``boxes`` (parsed pixel boxes, first 32), ``ious`` and
``matches`` (``[predicted index, ground-truth index]``) of the matching, ``n_pred``, ``n_gt``,
``dropped`` (first 5, with ``n_dropped``) and ``reason`` when nothing usable was found.

Under a model family's box format the ground truth is first expressed in that format
(:func:`truth_in_format`: written as the family writes boxes and read back), so the best answer the
family can give, on its coordinate grid, scores 1.0; the generic formats compare to the truth as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from stages.lib.boxes import (
    GENERIC_FORMATS,
    BoxParse,
    box_iou,
    get_format,
    iou_matrix,
    paired_ious,
    parse_boxes_batch,
    parse_boxes_detailed,
    quantized,
)
from stages.lib.rewards.result import GroundTruthError, RewardResult, gc_paused

__all__ = ["IouTruth", "prepare_iou", "truth_in_format", "score_iou", "score_iou_batch", "iou_reward"]

# Caps on what a detail lists, so an output spelling thousands of boxes stays a small JSON cell.
_MAX_BOXES_IN_DETAIL = 32
_MAX_DROPPED_IN_DETAIL = 5


@dataclass(frozen=True, slots=True)
class IouTruth:
    """Ground-truth boxes clipped to the image (pixel xyxy, each of positive area)."""

    boxes: tuple[tuple[float, float, float, float], ...]
    width: float
    height: float


def prepare_iou(gt_boxes: Sequence[Sequence[float]] | None, width: float, height: float) -> IouTruth:
    """Check and clip the ground truth once per task; raises :class:`GroundTruthError` when the
    image size is not positive or a box is missing, not 4 finite numbers, or empty inside the image."""
    if not (width and height and width > 0 and height > 0):
        raise GroundTruthError(f"image size must be positive, got width={width!r}, height={height!r}")
    if not gt_boxes:
        raise GroundTruthError("grounding task has no ground-truth boxes")
    clipped = []
    for box in gt_boxes:
        if box is None or len(box) != 4 or not all(v is not None and math.isfinite(v) for v in box):
            raise GroundTruthError(f"ground-truth box {box!r} is not 4 finite numbers (x1, y1, x2, y2)")
        x1, x2 = sorted((min(max(float(box[0]), 0.0), width), min(max(float(box[2]), 0.0), width)))
        y1, y2 = sorted((min(max(float(box[1]), 0.0), height), min(max(float(box[3]), 0.0), height)))
        if x2 <= x1 or y2 <= y1:
            raise GroundTruthError(f"ground-truth box {list(box)!r} has no area inside the {width}x{height} image")
        clipped.append((x1, y1, x2, y2))
    return IouTruth(tuple(clipped), float(width), float(height))


def truth_in_format(truth: IouTruth, box_format: str) -> IouTruth:
    """``truth`` as a model writing ``box_format`` can best express it: each box quantized to the
    format's grid (:func:`stages.lib.boxes.quantized`); unchanged for the generic formats and for
    formats the pipeline cannot write (points)."""
    if box_format in GENERIC_FORMATS:
        return truth
    spec = get_format(box_format)
    if spec.write is None:
        return truth
    boxes = tuple(tuple(quantized(spec, b, truth.width, truth.height)) for b in truth.boxes)
    return IouTruth(boxes, truth.width, truth.height)  # type: ignore[arg-type]


def _result(parse: BoxParse, truth: IouTruth, reward: float, ious: list[float], matches: list[list[int]]) -> RewardResult:
    detail: dict = {"format": parse.fmt, "boxes": parse.boxes[:_MAX_BOXES_IN_DETAIL], "ious": ious, "matches": matches,
                    "n_pred": parse.n_found, "n_gt": len(truth.boxes)}
    if parse.dropped:
        detail["n_dropped"] = len(parse.dropped)
        detail["dropped"] = parse.dropped[:_MAX_DROPPED_IN_DETAIL]
    if not parse.boxes:
        detail["reason"] = "no usable box in the output" if parse.dropped else "no box found in the output"
        return RewardResult(0.0, False, detail)
    return RewardResult(reward, True, detail)


def _match(parse: BoxParse, truth: IouTruth) -> RewardResult:
    pred, gt = parse.boxes, truth.boxes
    if not pred:
        return _result(parse, truth, 0.0, [], [])
    denom = max(parse.n_found, len(gt))
    if len(pred) == 1 and len(gt) == 1:
        iou = box_iou(pred[0], gt[0])
        return _result(parse, truth, iou / denom, [iou], [[0, 0]])
    m = iou_matrix(np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64))
    rows, cols = linear_sum_assignment(m, maximize=True)
    ious = m[rows, cols]
    reward = min(float(ious.sum()) / denom, 1.0)
    return _result(parse, truth, reward, ious.tolist(), [[int(r), int(c)] for r, c in zip(rows, cols)])


def score_iou(text: str, truth: IouTruth, box_format: str = "auto") -> RewardResult:
    """Score one output against prepared ground truth; never raises on model output."""
    return _match(parse_boxes_detailed(text or "", truth.width, truth.height, box_format), truth_in_format(truth, box_format))


def score_iou_batch(texts: Sequence[str], truths: Sequence[IouTruth], box_format: str = "auto") -> list[RewardResult]:
    """Score many outputs, equal row by row to :func:`score_iou`: the boxes are parsed by
    :func:`~stages.lib.boxes.batch.parse_boxes_batch`, the common one-box-vs-one-box rows get
    their IoU in one numpy pass, the others go through Hungarian matching row by row."""
    with gc_paused():
        texts = [t or "" for t in texts]
        if box_format not in GENERIC_FORMATS:
            expressed: dict[int, IouTruth] = {}
            for t in truths:
                if id(t) not in expressed:
                    expressed[id(t)] = truth_in_format(t, box_format)
            truths = [expressed[id(t)] for t in truths]
        parses = parse_boxes_batch(texts, [tr.width for tr in truths], [tr.height for tr in truths], box_format)
        simple = [i for i, (p, tr) in enumerate(zip(parses, truths)) if len(p.boxes) == 1 and not p.dropped and len(tr.boxes) == 1]
        out: list[RewardResult | None] = [None] * len(parses)
        if simple:
            pred = np.array([parses[i].boxes[0] for i in simple], dtype=np.float64)
            gt = np.array([truths[i].boxes[0] for i in simple], dtype=np.float64)
            for i, iou in zip(simple, paired_ious(pred, gt)):
                out[i] = _result(parses[i], truths[i], iou, [iou], [[0, 0]])
        return [r if r is not None else _match(parses[i], truths[i]) for i, r in enumerate(out)]


def iou_reward(
    text: str, gt_boxes: Sequence[Sequence[float]], width: float, height: float, *, box_format: str = "auto"
) -> RewardResult:
    """IoU reward of ``text`` against pixel xyxy ``gt_boxes`` on a ``width`` x ``height`` image:
    one box -> IoU; several -> summed IoU of a one-to-one (Hungarian) matching divided by
    max(#predicted, #ground truth). Unparseable output -> reward 0, ``parse_ok`` false, with
    ``detail["reason"]``. Raises :class:`GroundTruthError` only for unusable ground truth."""
    return score_iou(text, prepare_iou(gt_boxes, width, height), box_format)
