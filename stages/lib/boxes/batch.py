"""Box parsing for many texts at once, with the same results as
:func:`~stages.lib.boxes.parse.parse_boxes_detailed` row by row.

The untagged texts are joined with NUL (which no coordinate slot can contain, so no match spans
two texts) and scanned by one ``finditer``; the coordinates become one (M, 4) array whose frame
inference (:func:`~stages.lib.boxes.frames.infer_frame`, vectorized), scaling, reordering and
clipping are numpy operations. Texts with box tags (``<``) or without any bracketed numbers (bare
answers, no box) take the row-by-row parser, and so do the family formats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stages.lib.boxes.formats.names import GENERIC_FORMATS
from stages.lib.boxes.parse import BoxParse, check_box_format, parse_boxes_detailed
from stages.lib.boxes.scan import BOX_RE, floats
from stages.lib.snippet import snippet

__all__ = ["parse_boxes_batch"]

_FRAME_CODES = {"pixel": 0, "norm1": 1, "norm1000": 2}
_FRAME_NAMES = ("pixel", "norm1", "norm1000")


def _scan(texts: Sequence[str], rows: list[int]) -> tuple[list[int], list[str], list, list[int]]:
    """One regex pass over the joined texts: for every bracketed 4-number group, its row, its four
    coordinate strings (flat) and its match; plus the rows that had none."""
    joined = "\x00".join(texts[i] for i in rows)
    ends = []
    pos = -1
    for i in rows:
        pos += len(texts[i]) + 1
        ends.append(pos)
    owner: list[int] = []
    slots: list[str] = []
    matches = []
    k = 0
    for m in BOX_RE.finditer(joined):
        start = m.start()
        while start > ends[k]:
            k += 1
        g = m.groups()
        slots.extend(g[:4] if g[0] is not None else g[4:])
        owner.append(k)
        matches.append(m)
    found = set(owner)
    return owner, slots, matches, [rows[j] for j in range(len(rows)) if j not in found]


def _to_array(slots: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(M, 4) coordinates and a mask of the groups whose four slots are all numbers."""
    try:
        values = np.array(list(map(float, slots)), dtype=np.float64).reshape(-1, 4)
        return values, np.ones(len(values), dtype=bool)
    except ValueError:
        raws = [floats(slots[i : i + 4]) for i in range(0, len(slots), 4)]
        numeric = np.array([r is not None for r in raws], dtype=bool)
        values = np.array([r if r is not None else (0.0, 0.0, 0.0, 0.0) for r in raws], dtype=np.float64).reshape(-1, 4)
        return values, numeric


def _frames(v: np.ndarray, owner: np.ndarray, ok: np.ndarray, w: np.ndarray, h: np.ndarray, n: int) -> np.ndarray:
    """Per row, the code of :func:`~stages.lib.boxes.frames.infer_frame` over its usable groups."""
    top = np.full(n, -np.inf)
    np.maximum.at(top, owner[ok], v[ok].max(axis=1))
    beyond = np.zeros(n, dtype=bool)
    out = (v[:, 0] > w[owner]) | (v[:, 2] > w[owner]) | (v[:, 1] > h[owner]) | (v[:, 3] > h[owner])
    np.logical_or.at(beyond, owner[ok], out[ok])
    return np.where(top <= 1.0, 1, np.where((top <= 1000.0) & beyond, 2, 0))


def parse_boxes_batch(
    texts: Sequence[str], widths: Sequence[float], heights: Sequence[float], box_format: str = "auto"
) -> list[BoxParse]:
    """Parse ``texts[i]`` for a ``widths[i]`` x ``heights[i]`` image, for every i; equal, element by
    element, to ``parse_boxes_detailed(texts[i], widths[i], heights[i], box_format)``."""
    check_box_format(box_format)
    if box_format not in GENERIC_FORMATS:  # family formats: row by row
        return [parse_boxes_detailed(t, w, h, box_format) for t, w, h in zip(texts, widths, heights)]
    out: list[BoxParse | None] = [None] * len(texts)
    rows = [i for i, t in enumerate(texts) if "<" not in t]
    owner_list, slots, matches, unmatched = _scan(texts, rows)
    slow = [i for i, t in enumerate(texts) if "<" in t] + unmatched
    for i in slow:
        out[i] = parse_boxes_detailed(texts[i], widths[i], heights[i], box_format)
    if matches:
        n = len(rows)
        w = np.array([widths[i] for i in rows], dtype=np.float64)
        h = np.array([heights[i] for i in rows], dtype=np.float64)
        if not ((w > 0).all() and (h > 0).all()):
            raise ValueError("image size must be positive for every row")
        owner = np.array(owner_list, dtype=np.intp)
        v, numeric = _to_array(slots)
        finite = numeric & np.isfinite(v).all(axis=1)
        codes = _frames(v, owner, finite, w, h, n) if box_format == "auto" else np.full(n, _FRAME_CODES[box_format])
        code = codes[owner]
        sx = np.where(code == 1, w[owner], np.where(code == 2, w[owner] / 1000.0, 1.0))
        sy = np.where(code == 1, h[owner], np.where(code == 2, h[owner] / 1000.0, 1.0))
        xa, xb, ya, yb = v[:, 0] * sx, v[:, 2] * sx, v[:, 1] * sy, v[:, 3] * sy
        x1 = np.maximum(np.minimum(xa, xb), 0.0)
        x2 = np.minimum(np.maximum(xa, xb), w[owner])
        y1 = np.maximum(np.minimum(ya, yb), 0.0)
        y2 = np.minimum(np.maximum(ya, yb), h[owner])
        placed = finite & (x2 > x1) & (y2 > y1)
        boxes = np.stack([x1, y1, x2, y2], axis=1).tolist()
        per_boxes: list[list] = [[] for _ in range(n)]
        per_dropped: list[list] = [[] for _ in range(n)]
        for j, (row, is_num, is_fin, ok) in enumerate(zip(owner_list, numeric.tolist(), finite.tolist(), placed.tolist())):
            if ok:
                per_boxes[row].append(boxes[j])
            elif is_num:
                reason = "zero area inside the image" if is_fin else "non-finite coordinate"
                per_dropped[row].append({"text": snippet(matches[j].group(0)), "reason": reason})
        has_finite = np.zeros(n, dtype=bool)
        has_finite[owner[finite]] = True
        for j, row in enumerate(rows):
            if out[row] is None:
                frame = _FRAME_NAMES[codes[j]] if has_finite[j] else "none"
                out[row] = BoxParse(per_boxes[j], frame, per_dropped[j])
    return out  # type: ignore[return-value]
