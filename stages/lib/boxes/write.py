"""Writing boxes as text: the pipeline's own ground-truth spelling of pixel boxes."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BOX_DECIMALS", "format_coordinate", "pixel_boxes_text"]

BOX_DECIMALS = 2
"""Ingested boxes are rounded to 1/100 pixel, the precision their ground-truth text is written with."""


def format_coordinate(value: float) -> str:
    """``value`` rounded to :data:`BOX_DECIMALS`, trailing zeros (and a bare point) dropped, never ``-0``."""
    text = f"{round(value, BOX_DECIMALS):.{BOX_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def pixel_boxes_text(boxes: Sequence[Sequence[float]]) -> str:
    """Ground-truth text of pixel xyxy boxes: ``[x1, y1, x2, y2]`` per box, comma-separated.

    Whole-pixel coordinates are written as integers, others with up to :data:`BOX_DECIMALS`
    decimals, so the text parses back to the (ingest-rounded) boxes and scores IoU 1.0 against them.
    """
    return ", ".join("[" + ", ".join(format_coordinate(v) for v in box) + "]" for box in boxes)
