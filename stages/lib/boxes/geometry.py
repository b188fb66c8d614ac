"""Box geometry in pixels: the xyxy box type, IoU (one pair, row-wise, all pairs) and EXIF re-orientation.

Every box here is ``(x1, y1, x2, y2)`` in pixels of the stored (upright) image, x2/y2 exclusive:
the frame ``tasks.boxes`` holds and every parser converts to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Box", "box_iou", "iou_matrix", "paired_ious", "orient_box"]

Box = tuple[float, float, float, float]
"""An xyxy box (x1 < x2, y1 < y2 when valid)."""


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 when they do not overlap or either has no area)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0.0 or ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0.0 else 0.0


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``pred`` (P, 4) and ``gt`` (G, 4) xyxy boxes, as a (P, G) array in [0, 1]."""
    p = pred[:, None, :]
    g = gt[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0.0, None)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    union = area_p + area_g - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)


def paired_ious(pred: np.ndarray, gt: np.ndarray) -> list[float]:
    """Row-wise IoU of two (N, 4) arrays of valid xyxy boxes: ``[box_iou(pred[i], gt[i]) for i]``."""
    iw = np.clip(np.minimum(pred[:, 2], gt[:, 2]) - np.maximum(pred[:, 0], gt[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(pred[:, 3], gt[:, 3]) - np.maximum(pred[:, 1], gt[:, 1]), 0.0, None)
    inter = iw * ih
    union = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1]) + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0).tolist()


def orient_box(box: Sequence[float], orientation: int, raw_size: tuple[int, int]) -> list[float]:
    """Map an xyxy box drawn on the raw pixels of a ``raw_size`` image to the upright image that
    ``PIL.ImageOps.exif_transpose`` makes for EXIF ``orientation`` (1 returns the box unchanged)."""
    w, h = raw_size
    x1, y1, x2, y2 = box

    def point(x: float, y: float) -> tuple[float, float]:
        return {
            1: (x, y),
            2: (w - x, y),  # FLIP_LEFT_RIGHT
            3: (w - x, h - y),  # ROTATE_180
            4: (x, h - y),  # FLIP_TOP_BOTTOM
            5: (y, x),  # TRANSPOSE
            6: (h - y, x),  # ROTATE_270 (clockwise quarter turn)
            7: (h - y, w - x),  # TRANSVERSE
            8: (y, w - x),  # ROTATE_90 (counter-clockwise quarter turn)
        }[orientation]

    (ax, ay), (bx, by) = point(x1, y1), point(x2, y2)
    return [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]
