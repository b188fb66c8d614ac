"""Bounding boxes out of free-form VLM output, as pixel xyxy.

Accepted spellings (several boxes per answer are fine):
- ``[x1, y1, x2, y2]`` or ``(x1, y1, x2, y2)``, alone, nested (``[[...], [...]]``) or inside JSON
  such as ``{"bbox_2d": [...]}`` / ``[{"bbox_2d": [...], "label": ...}, ...]`` (the JSON is not
  parsed: every bracketed group of exactly four comma-separated values that all read as numbers
  with ``float()`` is a box, so truncated JSON still works);
- ``(x1,y1),(x2,y2)`` point pairs;
- Qwen-VL tags ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` and ``<box>...</box>`` (any numbers
  inside, taken four at a time);
- a bare answer made of exactly four numbers (``10 20 30 40``).

Coordinate scale (``box_format``):
- ``"pixel"``, ``"norm1"`` (0-1) and ``"norm1000"`` (0-1000, Qwen-VL / CogVLM style) force a scale.
- ``"auto"`` (default): boxes inside Qwen tags are 0-1000. The other boxes of one answer share one
  scale, decided on all their coordinates at once: every coordinate <= 1 -> 0-1; else some x
  beyond the image width or some y beyond its height while every coordinate <= 1000 -> 0-1000;
  else pixels. (A 0-1000 box that happens to fit inside a large image is read as pixels: set
  ``box_format`` when the model's convention is known.)

Sanitizing: x1 > x2 (or y1 > y2) is reordered; coordinates are clipped to the image (negative
ones become 0). A box with a NaN or infinite coordinate, a malformed tag, or a box of zero area
after clipping is dropped and reported in :attr:`BoxParse.dropped`. Boxes keep text order (tagged
ones first). All patterns are linear-time on any input (bounded tag bodies and coordinate slots,
no nested or adjacent ambiguous quantifiers). :mod:`stages.lib.rewards.boxes_batch` parses many
outputs at once with the same results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from stages.lib.rewards.result import snippet

__all__ = ["BoxFormat", "BOX_FORMATS", "BoxParse", "parse_boxes", "parse_boxes_detailed"]

BoxFormat = Literal["auto", "pixel", "norm1", "norm1000"]
BOX_FORMATS: tuple[str, ...] = get_args(BoxFormat)

_N = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?<![A-Za-z])(?:nan|inf(?:inity)?)(?![A-Za-z])"
_NUM_RE = re.compile(_N, re.IGNORECASE)
# A coordinate slot is up to 40 characters without brackets, commas or NUL, and must pass
# float(): a plain character class is twice as fast to scan as a number pattern, and stays
# linear. (NUL is excluded so that the batch parser can join outputs with it.)
_S = r"([^\[\]()<>,\x00]{1,40})"
_BOX_RE = re.compile(
    rf"\({_S},{_S}\)\s*(?:,\s*)?\({_S},{_S}\)"  # (x1,y1),(x2,y2)
    rf"|[\[(]{_S},{_S},{_S},{_S}[\])]"  # [x1, y1, x2, y2]
)
_TAG_RE = re.compile(r"<\|box_start\|>([^<]{0,256})<\|box_end\|>|<box>([^<]{0,512})</box>")
_BARE_RE = re.compile(rf"\s*({_N})(?:\s*,\s*|\s+)({_N})(?:\s*,\s*|\s+)({_N})(?:\s*,\s*|\s+)({_N})\s*", re.IGNORECASE)
_BARE_MAX_CHARS = 256
_INF = float("inf")

_Raw = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class BoxParse:
    """The boxes found in one answer.

    ``boxes``: valid pixel xyxy boxes; ``fmt``: the scale applied to untagged boxes (``"none"`` when
    there were none); ``dropped``: ``{"text", "reason"}`` for each box found but unusable.
    """

    boxes: list[list[float]]
    fmt: str
    dropped: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_found(self) -> int:
        """Boxes the answer spelled out, usable or not (what a missing/extra-box penalty counts)."""
        return len(self.boxes) + len(self.dropped)


def _infer_format(raws: list[_Raw], width: float, height: float) -> str:
    top = max(map(max, raws))
    if top <= 1.0:
        return "norm1"
    if top > 1000.0:
        return "pixel"
    for x1, y1, x2, y2 in raws:
        if x1 > width or x2 > width or y1 > height or y2 > height:
            return "norm1000"
    return "pixel"


def _to_pixels(raw: _Raw, fmt: str, width: float, height: float) -> list[float] | None:
    """Scale, reorder and clip one box; ``None`` when nothing of it is left inside the image."""
    x1, y1, x2, y2 = raw
    if fmt != "pixel":
        sx, sy = (width, height) if fmt == "norm1" else (width / 1000.0, height / 1000.0)
        x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
    if x1 > x2:
        x1, x2 = x2, x1
    if y1 > y2:
        y1, y2 = y2, y1
    # Clipping the low corner up and the high corner down leaves x2 <= x1 exactly when the box
    # misses the image (and when it had no width to begin with).
    if x1 < 0.0:
        x1 = 0.0
    if y1 < 0.0:
        y1 = 0.0
    if x2 > width:
        x2 = width
    if y2 > height:
        y2 = height
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def _floats(slots: tuple[str, ...] | list[str]) -> _Raw | None:
    """Four coordinates, or ``None`` when a slot is not a number (then it was not a box)."""
    try:
        return (float(slots[0]), float(slots[1]), float(slots[2]), float(slots[3]))
    except ValueError:
        return None


def _finite(raw: _Raw) -> bool:
    return -_INF < raw[0] < _INF and -_INF < raw[1] < _INF and -_INF < raw[2] < _INF and -_INF < raw[3] < _INF


def _place(raws: list[_Raw], spans: list[str], fmt: str, width: float, height: float, boxes: list, dropped: list) -> None:
    """Turn finite raw boxes into pixel boxes, or drop them, in text order; non-finite ones drop."""
    for raw, span in zip(raws, spans):
        if not _finite(raw):
            dropped.append({"text": snippet(span), "reason": "non-finite coordinate"})
            continue
        box = _to_pixels(raw, fmt, width, height)
        if box is None:
            dropped.append({"text": snippet(span), "reason": "zero area inside the image"})
        else:
            boxes.append(box)


def _parse_tags(text: str, width: float, height: float, box_format: str, boxes: list, dropped: list) -> str:
    """Take the boxes inside Qwen-VL tags; return the text with the tags blanked out."""
    raws: list[_Raw] = []
    spans: list[str] = []
    for m in _TAG_RE.finditer(text):
        nums = _NUM_RE.findall(m.group(1) if m.group(1) is not None else m.group(2))
        if not nums or len(nums) % 4:
            dropped.append({"text": snippet(m.group(0)), "reason": f"box tag holds {len(nums)} numbers, not 4k"})
            continue
        for i in range(0, len(nums), 4):
            raws.append((float(nums[i]), float(nums[i + 1]), float(nums[i + 2]), float(nums[i + 3])))
            spans.append(m.group(0))
    if raws:
        _place(raws, spans, "norm1000" if box_format == "auto" else box_format, width, height, boxes, dropped)
    return _TAG_RE.sub(" ", text)


def parse_boxes_detailed(text: str, width: float, height: float, box_format: str = "auto") -> BoxParse:
    """Parse every box in ``text`` (see the module doc for formats and the scale rule) into pixel
    xyxy boxes clipped to a ``width`` x ``height`` image. Never raises on model output; raises
    ``ValueError`` for an unknown ``box_format`` or a non-positive image size (caller bugs)."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"unknown box_format {box_format!r}; available: {', '.join(BOX_FORMATS)}")
    if not (width > 0 and height > 0):
        raise ValueError(f"image size must be positive, got width={width!r}, height={height!r}")
    width, height = float(width), float(height)
    boxes: list[list[float]] = []
    dropped: list[dict[str, str]] = []
    rest = _parse_tags(text, width, height, box_format, boxes, dropped) if "<" in text else text
    tagged = bool(boxes)

    raws: list[_Raw] = []  # every bracketed group of four numbers, finite or not, in text order
    spans: list[str] = []
    for m in _BOX_RE.finditer(rest):
        g = m.groups()
        raw = _floats(g) if g[0] is not None else _floats(g[4:])
        if raw is not None:
            raws.append(raw)
            spans.append(m.group(0))
    if not raws and not boxes and not dropped and len(rest) <= _BARE_MAX_CHARS:
        m = _BARE_RE.fullmatch(rest)
        if m is not None:
            raws.append(_floats(m.groups()))  # type: ignore[arg-type]  # the pattern only matches numbers
            spans.append(m.group(0))
    finite = [r for r in raws if _finite(r)]
    if finite:
        fmt = _infer_format(finite, width, height) if box_format == "auto" else box_format
    else:
        fmt = ("norm1000" if box_format == "auto" else box_format) if tagged else "none"
    if raws:
        _place(raws, spans, fmt, width, height, boxes, dropped)
    return BoxParse(boxes, fmt, dropped)


def parse_boxes(text: str, width: float, height: float, box_format: str = "auto") -> list[list[float]]:
    """Return the usable boxes in ``text`` as pixel ``[x1, y1, x2, y2]`` lists, clipped to the
    image, in a deterministic order (tagged boxes first, then the others in text order).
    See :func:`parse_boxes_detailed` for what was dropped and why."""
    return parse_boxes_detailed(text, width, height, box_format).boxes
