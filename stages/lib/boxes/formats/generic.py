"""The generic formats: any notation of the scan, with a forced frame or the guessing rule."""

from __future__ import annotations

from collections.abc import Sequence

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.boxes.formats.spec import BoxFormatSpec
from stages.lib.boxes.parse import parse_generic
from stages.lib.boxes.write import pixel_boxes_text

__all__ = ["GENERIC_SPECS"]


def _reader(name: str):
    return lambda text, width, height: parse_generic(text, width, height, name)


def _norm_text(boxes: Sequence[Sequence[float]], width: float, height: float, top: float, decimals: int) -> str:
    def v(x: float, size: float) -> str:
        q = min(max(x / size * top, 0.0), top)
        return str(int(round(q))) if decimals == 0 else f"{q:.{decimals}f}"

    return ", ".join(f"[{v(b[0], width)}, {v(b[1], height)}, {v(b[2], width)}, {v(b[3], height)}]" for b in boxes)


_SOURCE = "the pipeline's own convention (no model family)"

GENERIC_SPECS: dict[BoxFormat, BoxFormatSpec] = {
    BoxFormat.AUTO: BoxFormatSpec(
        "auto", "any notation; box tags 0-1000, else the frame guessed from the numbers (stages.lib.boxes.frames)",
        _SOURCE, _reader("auto"), lambda boxes, w, h: pixel_boxes_text(boxes),
    ),
    BoxFormat.PIXEL: BoxFormatSpec(
        "pixel", "any notation, pixels of the image; written [x1, y1, x2, y2] with up to 2 decimals",
        _SOURCE, _reader("pixel"), lambda boxes, w, h: pixel_boxes_text(boxes),
    ),
    BoxFormat.NORM1: BoxFormatSpec(
        "norm1", "any notation, 0-1 of the image; written with 3 decimals",
        _SOURCE, _reader("norm1"), lambda boxes, w, h: _norm_text(boxes, w, h, 1.0, 3),
    ),
    BoxFormat.NORM1000: BoxFormatSpec(
        "norm1000", "any notation, 0-1000 of the image; written as integers",
        _SOURCE, _reader("norm1000"), lambda boxes, w, h: _norm_text(boxes, w, h, 1000.0, 0),
    ),
}
