"""The generic formats: any notation of the scan, with a forced frame or the guessing rule."""

from __future__ import annotations

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.boxes.formats.spec import BoxFormatSpec
from stages.lib.boxes.parse import parse_generic
from stages.lib.boxes.write import pixel_boxes_text

__all__ = ["GENERIC_SPECS"]


def _reader(name: str):
    return lambda text, width, height: parse_generic(text, width, height, name)


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
    # The pipeline never writes candidates in norm1 / norm1000 (a family format does that, on the
    # family's grid), so they have no writer and their truth is compared unquantized.
    BoxFormat.NORM1: BoxFormatSpec("norm1", "any notation, 0-1 of the image", _SOURCE, _reader("norm1")),
    BoxFormat.NORM1000: BoxFormatSpec("norm1000", "any notation, 0-1000 of the image", _SOURCE, _reader("norm1000")),
}
