"""Ground-truth boxes as annotations give them: numbers in a JSON value, in pixels, in one layout.

The *layout* says which four numbers a box is (corners xyxy, or corner + size xywh as COCO writes
it); annotation boxes are always pixels of the image. How a *model* writes boxes in text (scale,
order, tags) is a different concept: :class:`stages.lib.boxes.parse.BoxFormat`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

__all__ = ["BoxLayout", "BadBox", "boxes_from_annotation", "check_pixel_box"]


class BoxLayout(StrEnum):
    """Which four pixel numbers an annotation box holds."""

    XYXY = "xyxy"  # x1, y1, x2, y2
    XYWH = "xywh"  # x, y, width, height (COCO ``bbox``)


class BadBox(ValueError):
    """An annotation box that is not usable ground truth; the message says why."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def boxes_from_annotation(value: Any, layout: BoxLayout) -> list[list[float]] | None:
    """Return ``value`` (one flat box or a list of boxes, ``layout`` pixels) as xyxy float boxes;
    ``None`` for ``None``. Raises :class:`BadBox` for anything that is not 4 numbers per box
    (bounds are checked against the image later, :func:`check_pixel_box`)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise BadBox(f"boxes must be a list of [x1, y1, x2, y2], got {value!r:.80}")
    if len(value) == 4 and all(_is_number(v) for v in value):
        value = [value]  # a single flat box
    boxes = []
    for box in value:
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise BadBox(f"a box must be 4 numbers, got {box!r:.80}")
        x1, y1, a, b = (float(v) for v in box)
        boxes.append([x1, y1, x1 + a, y1 + b] if layout == BoxLayout.XYWH else [x1, y1, a, b])
    return boxes


def check_pixel_box(box: Sequence[float], size: tuple[int, int] | None, tolerance: float) -> list[float]:
    """Return the xyxy pixel ``box`` clipped to a ``size`` (width, height) image, or raise :class:`BadBox`
    when a coordinate is not finite, the box is empty or inverted, or it reaches more than
    ``tolerance`` pixels past an edge. ``size`` ``None`` checks the box alone."""
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box):
        raise BadBox(f"box {box} has a non-finite coordinate")
    if x2 <= x1 or y2 <= y1:
        raise BadBox(f"box {box} is empty or inverted (needs x1 < x2 and y1 < y2)")
    if size is None:
        return list(box)
    w, h = size
    if x1 < -tolerance or y1 < -tolerance or x2 > w + tolerance or y2 > h + tolerance:
        raise BadBox(f"box {box} lies outside the {w}x{h} image (tolerance {tolerance} px)")
    return [max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)]
