"""Rewriting the boxes of a text in place: the same boxes :func:`~stages.lib.boxes.scan.scan_boxes`
finds (so what is rewritten is what the reward reads), each coordinate written back with the number
of decimals it had, so the text keeps its notation exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stages.lib.boxes.geometry import Box
from stages.lib.boxes.scan import scan_boxes

__all__ = ["BoxText", "parse_box_text", "box_skeleton"]

# Only plain decimals are rewritten (no exponent, sign other than minus, NaN...): a text with any
# other coordinate spelling is left alone rather than re-spelt.
_PLAIN = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class BoxText:
    """A text's boxes and where each coordinate sits: ``spans[i]`` and ``decimals[i]`` for number i
    (four per box, boxes in text order)."""

    text: str
    spans: tuple[tuple[int, int], ...]
    values: tuple[float, ...]
    decimals: tuple[int, ...]

    @property
    def boxes(self) -> list[Box]:
        """The boxes as written (x1, y1, x2, y2 in the text's own frame)."""
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
    """Return the boxes written in ``text`` with their positions, or None when it holds none or
    spells a coordinate other than as a plain decimal."""
    mentions = scan_boxes(text, spans=True).in_text_order
    spans = tuple(s for m in mentions for s in m.spans)
    if not spans:
        return None
    raw = [text[s:e] for s, e in spans]
    if not all(_PLAIN.fullmatch(r) for r in raw):
        return None
    return BoxText(
        text=text,
        spans=spans,
        values=tuple(float(r) for r in raw),
        decimals=tuple(len(r.split(".")[1]) if "." in r else 0 for r in raw),
    )


def box_skeleton(text: str) -> str:
    """Return ``text`` with each box coordinate replaced by ``#`` and whitespace collapsed: the
    notation without the values."""
    spans = [s for m in scan_boxes(text, spans=True).in_text_order for s in m.spans]
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append("#")
        last = end
    out.append(text[last:])
    return " ".join("".join(out).split())
