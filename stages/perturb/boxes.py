"""Boxes inside answer text: find them, measure IoU, and move or rescale them into an IoU band.

A grounding answer is text that holds one or more ``x1, y1, x2, y2`` boxes in whatever notation the
corpus uses (``[10, 20, 30, 40]``, ``(0.1,0.2),(0.3,0.4)``, ``<box>100 200 300 400</box>``). The box
injector only rewrites the numbers, each with the number of decimals it had, so the perturbed
answer keeps the notation exactly.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

__all__ = [
    "Box",
    "BoxText",
    "box_iou",
    "parse_box_text",
    "box_skeleton",
    "coordinate_bounds",
    "perturb_box",
    "place_in_band",
]

Box = tuple[float, float, float, float]

_NUM = r"-?\d+(?:\.\d+)?"
# four numbers joined only by spaces, commas, semicolons and brackets: one box in any common notation
_BOX_RE = re.compile(rf"{_NUM}(?:[\s,;()\[\]]+{_NUM}){{3}}")
_NUM_RE = re.compile(_NUM)


@dataclass(frozen=True)
class BoxText:
    """A text's boxes and where each coordinate sits: ``spans[i]`` and ``decimals[i]`` for number i."""

    text: str
    spans: tuple[tuple[int, int], ...]
    values: tuple[float, ...]
    decimals: tuple[int, ...]

    @property
    def boxes(self) -> list[Box]:
        v = self.values
        return [(v[i], v[i + 1], v[i + 2], v[i + 3]) for i in range(0, len(v), 4)]

    def with_boxes(self, boxes: list[Box]) -> str:
        """Return the text with each coordinate replaced, formatted with the decimals it had."""
        flat = [c for b in boxes for c in b]
        if len(flat) != len(self.values):
            raise ValueError(f"expected {len(self.values) // 4} boxes, got {len(boxes)}")
        out, last = [], 0
        for (start, end), value, dec in zip(self.spans, flat, self.decimals):
            out.append(self.text[last:start])
            text = f"{value:.{dec}f}"
            out.append("0" if dec == 0 and text == "-0" else text)
            last = end
        out.append(self.text[last:])
        return "".join(out)


def parse_box_text(text: str) -> BoxText | None:
    """Return the boxes written in ``text`` (groups of four numbers), or None when it holds none."""
    spans: list[tuple[int, int]] = []
    for match in _BOX_RE.finditer(text):
        spans.extend((match.start() + m.start(), match.start() + m.end()) for m in _NUM_RE.finditer(match.group()))
    if not spans:
        return None
    raw = [text[s:e] for s, e in spans]
    return BoxText(
        text=text,
        spans=tuple(spans),
        values=tuple(float(r) for r in raw),
        decimals=tuple(len(r.split(".")[1]) if "." in r else 0 for r in raw),
    )


def box_skeleton(text: str) -> str:
    """Return ``text`` with each box replaced by ``<box>`` and whitespace collapsed: the notation without the values."""
    return " ".join(_BOX_RE.sub("<box>", text).split())


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes; 0.0 when either has no area."""
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def coordinate_bounds(values: tuple[float, ...], width: int | None, height: int | None) -> tuple[float, float]:
    """Guess the coordinate frame of ``values`` and return its (max x, max y).

    Normalized 0-1 when every value is at most 1; pixels when they fit the image; 0-1000 (Qwen-style)
    when they fit that; otherwise unbounded beyond the largest value seen (kept at 1.5x of it).
    """
    xs, ys = values[0::2], values[1::2]
    if max(values) <= 1.0:
        return 1.0, 1.0
    if width and height and max(xs) <= width and max(ys) <= height:
        return float(width), float(height)
    if max(values) <= 1000:
        return 1000.0, 1000.0
    return 1.5 * max(xs), 1.5 * max(ys)


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
