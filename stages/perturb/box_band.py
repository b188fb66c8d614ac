"""Hallucinated boxes: move or rescale each box of an answer into an IoU band, in the answer's notation.

The boxes are found and rewritten by :mod:`stages.lib.boxes.edit` (the boxes the reward reads), in
the frame they are written in; only the numbers change, each keeping its number of decimals.
IoU is invariant under scaling x and y, so it is measured on the numbers as written.
"""

from __future__ import annotations

import math
import random

from stages.lib.boxes import Box, BoxText, box_iou, frame_extent, infer_frame

__all__ = ["written_bounds", "perturb_box", "place_in_band"]


def written_bounds(parsed: BoxText, width: int, height: int) -> tuple[float, float]:
    """The (max x, max y) of the frame ``parsed``'s boxes are written in on a ``width`` x ``height``
    image, guessed by the same rule the reward reads them with (:func:`stages.lib.boxes.infer_frame`)."""
    return frame_extent(infer_frame(parsed.boxes, width, height), width, height)


def perturb_box(box: Box, target_iou: float, rng: random.Random, bounds: tuple[float, float]) -> Box:
    """Move the box along one axis or rescale it about its centre so that its IoU with ``box`` is ``target_iou``.

    Exact before clamping to ``[0, bounds]``; the caller re-measures after clamping and rounding.
    Shift along x by dx gives IoU (w - dx) / (w + dx); uniform scaling by s about the centre gives
    s^2 (shrink) or 1 / s^2 (grow).
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    mode = rng.choice(("move_x", "move_y", "grow", "shrink"))
    if mode in ("move_x", "move_y"):
        size, lo, hi, limit = (w, x1, x2, bounds[0]) if mode == "move_x" else (h, y1, y2, bounds[1])
        d = size * (1 - target_iou) / (1 + target_iou)
        room_plus, room_minus = limit - hi, lo
        sign = rng.choice((1, -1))
        if (sign > 0 and room_plus < d) or (sign < 0 and room_minus < d):
            sign = -sign
        d *= sign
        new = (x1 + d, y1, x2 + d, y2) if mode == "move_x" else (x1, y1 + d, x2, y2 + d)
    else:
        s = math.sqrt(target_iou) if mode == "shrink" else 1 / math.sqrt(target_iou)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        new = (cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2)
    bx, by = bounds
    return (
        min(max(new[0], 0.0), bx),
        min(max(new[1], 0.0), by),
        min(max(new[2], 0.0), bx),
        min(max(new[3], 0.0), by),
    )


def place_in_band(
    parsed: BoxText,
    band: tuple[float, float],
    rng: random.Random,
    bounds: tuple[float, float],
    attempts: int = 64,
) -> tuple[str, list[float]] | None:
    """Return (new text, IoU per box) with every box's IoU against the original inside ``band``, or None.

    IoU is measured on the numbers as written back (after rounding to the original decimals), so the
    band holds for what the scorer will parse. None when some box cannot be placed (degenerate box,
    too few decimals for so small a box).
    """
    lo, hi = band
    originals = parsed.boxes
    new_boxes: list[Box] = []
    ious: list[float] = []
    for j, box in enumerate(originals):
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        decimals = parsed.decimals[4 * j : 4 * j + 4]
        for _ in range(attempts):
            cand = perturb_box(box, rng.uniform(lo, hi), rng, bounds)
            cand = tuple(float(f"{v:.{d}f}") for v, d in zip(cand, decimals))  # as the text will read
            iou = box_iou(box, cand)
            if lo <= iou <= hi:
                new_boxes.append(cand)
                ious.append(iou)
                break
        else:
            return None
    return parsed.with_boxes(new_boxes), ious
