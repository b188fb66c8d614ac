"""Boxes out of free-form VLM output, as pixel xyxy: the scan, then the box format's frame.

``box_format`` names how the model writes boxes (:class:`~stages.lib.boxes.formats.names.BoxFormat`):
- ``"pixel"``, ``"norm1"`` (0-1) and ``"norm1000"`` (0-1000) read any notation of the scan in that frame.
- ``"auto"`` (default): boxes inside box tags are 0-1000; the other boxes of one text share one
  frame, guessed by :func:`stages.lib.boxes.frames.infer_frame`.
- a model family's name (``"qwen2_vl"``, ``"paligemma"``, ...): that family's documented notation
  and frame, from the registry in :mod:`stages.lib.boxes.formats`.

Sanitizing: x1 > x2 (or y1 > y2) is reordered; coordinates are clipped to the image (negative
ones become 0). A box with a NaN or infinite coordinate, a malformed tag, or a box of zero area
after clipping is dropped and reported in :attr:`BoxParse.dropped`. Boxes keep text order (tagged
ones first). :mod:`stages.lib.boxes.batch` parses many texts at once with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stages.lib.boxes.formats.names import GENERIC_FORMATS, BoxFormat
from stages.lib.boxes.frames import CoordFrame, infer_frame, to_pixel_box
from stages.lib.boxes.scan import BoxMention, scan_boxes
from stages.lib.snippet import snippet

__all__ = ["BoxFormat", "BOX_FORMATS", "BoxParse", "check_box_format", "parse_generic", "parse_boxes", "parse_boxes_detailed"]

BOX_FORMATS: tuple[str, ...] = tuple(f.value for f in BoxFormat)
_KNOWN = frozenset(BOX_FORMATS)

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class BoxParse:
    """The boxes found in one text.

    ``boxes``: valid pixel xyxy boxes; ``fmt``: the frame applied to untagged boxes (``"none"`` when
    there were none); ``dropped``: ``{"text", "reason"}`` for each box found but unusable.
    """

    boxes: list[list[float]]
    fmt: str
    dropped: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_found(self) -> int:
        """Boxes the text spelled out, usable or not (what a missing/extra-box penalty counts)."""
        return len(self.boxes) + len(self.dropped)


def check_box_format(box_format: str) -> None:
    """Raise ``ValueError`` naming the available formats when ``box_format`` is not one."""
    if box_format not in _KNOWN:
        raise ValueError(f"unknown box_format {box_format!r}; available: {', '.join(BOX_FORMATS)}")


def _finite(raw: tuple[float, float, float, float]) -> bool:
    return -_INF < raw[0] < _INF and -_INF < raw[1] < _INF and -_INF < raw[2] < _INF and -_INF < raw[3] < _INF


def _place(mentions: list[BoxMention], frame: str, width: float, height: float, boxes: list, dropped: list) -> None:
    """Turn mentions into pixel boxes, or drop them, in order; non-finite ones drop."""
    for m in mentions:
        if not _finite(m.raw):
            dropped.append({"text": snippet(m.notation), "reason": "non-finite coordinate"})
            continue
        box = to_pixel_box(m.raw, frame, width, height)
        if box is None:
            dropped.append({"text": snippet(m.notation), "reason": "zero area inside the image"})
        else:
            boxes.append(box)


def parse_boxes_detailed(text: str, width: float, height: float, box_format: str = "auto") -> BoxParse:
    """Parse every box in ``text`` (see the module doc for formats and the frame rule) into pixel
    xyxy boxes clipped to a ``width`` x ``height`` image. Never raises on model output; raises
    ``ValueError`` for an unknown ``box_format`` or a non-positive image size (caller bugs)."""
    check_box_format(box_format)
    if not (width > 0 and height > 0):
        raise ValueError(f"image size must be positive, got width={width!r}, height={height!r}")
    if box_format in GENERIC_FORMATS:
        return parse_generic(text, float(width), float(height), str(box_format))
    from stages.lib.boxes.formats import FORMATS  # the family readers import this module

    return FORMATS[BoxFormat(box_format)].read(text, float(width), float(height))


def parse_generic(text: str, width: float, height: float, box_format: str) -> BoxParse:
    """The generic formats (``auto``, ``pixel``, ``norm1``, ``norm1000``) on a checked, positive size."""
    scan = scan_boxes(text)
    boxes: list[list[float]] = []
    dropped: list[dict[str, str]] = [{"text": snippet(tag), "reason": reason} for tag, reason in scan.malformed]
    tag_frame = CoordFrame.NORM1000.value if box_format == "auto" else box_format
    if scan.tagged:
        _place(scan.tagged, tag_frame, width, height, boxes, dropped)
    tagged = bool(boxes)
    finite = [m.raw for m in scan.untagged if _finite(m.raw)]
    if finite:
        frame = infer_frame(finite, width, height).value if box_format == "auto" else box_format
    else:
        frame = tag_frame if tagged else "none"
    if scan.untagged:
        _place(scan.untagged, frame, width, height, boxes, dropped)
    return BoxParse(boxes, frame, dropped)


def parse_boxes(text: str, width: float, height: float, box_format: str = "auto") -> list[list[float]]:
    """Return the usable boxes in ``text`` as pixel ``[x1, y1, x2, y2]`` lists, clipped to the
    image, in a deterministic order (tagged boxes first, then the others in text order).
    See :func:`parse_boxes_detailed` for what was dropped and why."""
    return parse_boxes_detailed(text, width, height, box_format).boxes
