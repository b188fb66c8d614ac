"""What a box format is: how to read a model's boxes out of text and how to write ours in it.

A format reads text into pixel boxes of the stored image (:class:`~stages.lib.boxes.parse.BoxParse`)
and, where the pipeline writes candidates in it (ground truth, hallucinations), writes pixel boxes
as text. :func:`quantized` is what writing then reading gives back: the best answer a model can
give in that format, which the IoU reward compares against (so a perfect answer scores 1.0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stages.lib.boxes.frames import to_pixel_box
from stages.lib.boxes.parse import BoxParse
from stages.lib.snippet import snippet

__all__ = ["Affine", "BoxFormatSpec", "Found", "place_found", "quantized"]

Reader = Callable[[str, float, float], BoxParse]
Writer = Callable[[Sequence[Sequence[float]], float, float], str]


@dataclass(frozen=True, slots=True)
class Affine:
    """Written coordinates to pixels, per axis: ``px = written * scale + shift``."""

    sx: float
    bx: float
    sy: float
    by: float

    def to_pixels(self, x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
        """One box (x first) from written coordinates to pixels."""
        return (x1 * self.sx + self.bx, y1 * self.sy + self.by, x2 * self.sx + self.bx, y2 * self.sy + self.by)

    def from_pixels(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """One pixel box (x first) to unrounded written coordinates."""
        return ((box[0] - self.bx) / self.sx, (box[1] - self.by) / self.sy, (box[2] - self.bx) / self.sx, (box[3] - self.by) / self.sy)


@dataclass(frozen=True, slots=True)
class Found:
    """A box a format found in text: its pixel coordinates (x first, unclipped) and the text it came from."""

    box: tuple[float, float, float, float]
    notation: str


@dataclass(frozen=True)
class BoxFormatSpec:
    """One box format: ``read`` (text -> pixel boxes, never raises on model output), ``write``
    (pixel boxes -> text in this format; ``None`` where the pipeline never writes it), and where
    the convention is documented (``source``) or that it is our choice."""

    name: str
    summary: str
    source: str
    read: Reader
    write: Writer | None = None
    points_only: bool = False


def _finite(box: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in box)


def place_found(found: Sequence[Found], name: str, width: float, height: float, dropped: list[dict[str, str]]) -> BoxParse:
    """Reorder, clip and keep the found boxes as :func:`~stages.lib.boxes.frames.to_pixel_box`
    does; drop non-finite or zero-area ones with a reason. ``fmt`` is ``name`` when anything was found."""
    boxes: list[list[float]] = []
    for f in found:
        if not _finite(f.box):
            dropped.append({"text": snippet(f.notation), "reason": "non-finite coordinate"})
            continue
        box = to_pixel_box(f.box, "pixel", width, height)
        if box is None:
            dropped.append({"text": snippet(f.notation), "reason": "zero area inside the image"})
        else:
            boxes.append(box)
    return BoxParse(boxes, name if (found or dropped) else "none", dropped)


def quantized(spec: BoxFormatSpec, box: Sequence[float], width: float, height: float) -> list[float]:
    """``box`` (pixels) as writing it in ``spec`` and reading it back gives it: the closest box the
    format can express. The box itself when the format is not written or the round trip loses it."""
    if spec.write is None:
        return list(box)
    back = spec.read(spec.write([box], width, height), width, height).boxes
    return back[0] if len(back) == 1 else list(box)
