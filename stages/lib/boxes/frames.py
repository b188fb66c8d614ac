"""Coordinate frames: the scale a box's numbers are written in, and conversion to pixels.

- ``pixel``: pixels of the image the task stores;
- ``norm1``: fractions of the image width / height (0-1);
- ``norm1000``: thousandths of the width / height (0-1000, as Qwen-VL and CogVLM write them).

:func:`infer_frame` is the one rule that guesses a frame when nothing says which it is; the reward
(reading model output) and the hallucination injector (rewriting ground-truth text) both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = ["CoordFrame", "Raw", "infer_frame", "frame_extent", "to_pixel_box"]

Raw = tuple[float, float, float, float]
"""Four coordinates as written (x1, y1, x2, y2), in some frame, not yet ordered or clipped."""


class CoordFrame(StrEnum):
    """The scale box coordinates are written in."""

    PIXEL = "pixel"
    NORM1 = "norm1"
    NORM1000 = "norm1000"


def infer_frame(raws: Sequence[Raw], width: float, height: float) -> CoordFrame:
    """Guess the frame of the (finite) boxes of one text, decided on all their coordinates at once:
    every coordinate <= 1 -> 0-1; else some x beyond ``width`` or some y beyond ``height`` while
    every coordinate <= 1000 -> 0-1000; else pixels. (A 0-1000 box that happens to fit inside a
    large image reads as pixels: name the format when the writer's convention is known.)"""
    top = max(map(max, raws))
    if top <= 1.0:
        return CoordFrame.NORM1
    if top > 1000.0:
        return CoordFrame.PIXEL
    for x1, y1, x2, y2 in raws:
        if x1 > width or x2 > width or y1 > height or y2 > height:
            return CoordFrame.NORM1000
    return CoordFrame.PIXEL


def frame_extent(frame: CoordFrame | str, width: float, height: float) -> tuple[float, float]:
    """The largest x and y a box can have in ``frame`` on a ``width`` x ``height`` image."""
    if frame == CoordFrame.NORM1:
        return 1.0, 1.0
    if frame == CoordFrame.NORM1000:
        return 1000.0, 1000.0
    return float(width), float(height)


def to_pixel_box(raw: Raw, frame: CoordFrame | str, width: float, height: float) -> list[float] | None:
    """Scale one box from ``frame`` to pixels, reorder swapped corners and clip it to the image;
    ``None`` when nothing of it is left inside the image (or it had no width or height)."""
    x1, y1, x2, y2 = raw
    if frame != CoordFrame.PIXEL:
        sx, sy = (width, height) if frame == CoordFrame.NORM1 else (width / 1000.0, height / 1000.0)
        x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
    if x1 > x2:
        x1, x2 = x2, x1
    if y1 > y2:
        y1, y2 = y2, y1
    # Clipping the low corner up and the high corner down leaves x2 <= x1 exactly when the box
    # misses the image (and when it had no width to begin with).
    if x1 < 0.0:
        x1 = 0.0
    if y1 < 0.0:
        y1 = 0.0
    if x2 > width:
        x2 = width
    if y2 > height:
        y2 = height
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]
