"""Finding boxes in free text: every spelling a VLM uses, with where each coordinate sits.

Spellings (several boxes per text are fine):
- ``[x1, y1, x2, y2]`` or ``(x1, y1, x2, y2)``, alone, nested (``[[...], [...]]``) or inside JSON
  such as ``{"bbox_2d": [...]}`` / ``[{"bbox_2d": [...], "label": ...}, ...]`` (the JSON is not
  parsed: every bracketed group of exactly four comma-separated values that all read as numbers
  with ``float()`` is a box, so truncated JSON still works);
- ``(x1,y1),(x2,y2)`` point pairs;
- box tags ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` and ``<box>...</box>`` (any numbers inside,
  taken four at a time);
- a bare text made of exactly four numbers (``10 20 30 40``).

The scan only finds numbers; what scale they are in is :mod:`stages.lib.boxes.frames`' business.
All patterns are linear-time on any input (bounded tag bodies and coordinate slots, no nested or
adjacent ambiguous quantifiers).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from stages.lib.boxes.frames import Raw

__all__ = ["BoxMention", "BoxScan", "scan_boxes"]

_N = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?<![A-Za-z])(?:nan|inf(?:inity)?)(?![A-Za-z])"
NUM_RE = re.compile(_N, re.IGNORECASE)
# A coordinate slot is up to 40 characters without brackets, commas or NUL, and must pass
# float(): a plain character class is twice as fast to scan as a number pattern, and stays
# linear. (NUL is excluded so that the batch parser can join texts with it.)
_S = r"([^\[\]()<>,\x00]{1,40})"
BOX_RE = re.compile(
    rf"\({_S},{_S}\)\s*(?:,\s*)?\({_S},{_S}\)"  # (x1,y1),(x2,y2)
    rf"|[\[(]{_S},{_S},{_S},{_S}[\])]"  # [x1, y1, x2, y2]
)
TAG_RE = re.compile(r"<\|box_start\|>([^<]{0,256})<\|box_end\|>|<box>([^<]{0,512})</box>")
_BARE_RE = re.compile(rf"\s*({_N})(?:\s*,\s*|\s+)({_N})(?:\s*,\s*|\s+)({_N})(?:\s*,\s*|\s+)({_N})\s*", re.IGNORECASE)
_BARE_MAX_CHARS = 256

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class BoxMention:
    """One box spelled out in a text: its four numbers as written (possibly NaN or infinite), the
    notation that holds it (the whole tag for a tagged box), and, when asked for, where each of the
    four numbers sits in the text (``spans``, start/end offsets, surrounding blanks excluded)."""

    raw: Raw
    notation: str
    tagged: bool
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class BoxScan:
    """Every box of one text: tagged ones and untagged ones, each in text order, and the box tags
    that hold no whole box (``malformed``: ``(tag text, reason)``)."""

    tagged: list[BoxMention] = field(default_factory=list)
    untagged: list[BoxMention] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def in_text_order(self) -> list[BoxMention]:
        """All mentions sorted by position (needs a scan made with ``spans=True``)."""
        return sorted(self.tagged + self.untagged, key=lambda m: m.spans[0])


def floats(slots: tuple[str, ...] | list[str]) -> Raw | None:
    """Four coordinates, or ``None`` when a slot is not a number (then it was not a box)."""
    try:
        return (float(slots[0]), float(slots[1]), float(slots[2]), float(slots[3]))
    except ValueError:
        return None


def _stripped(m: re.Match, group: int, shift: int) -> Span:
    """The span of ``m``'s group without surrounding whitespace, moved by ``shift``."""
    start, end = m.span(group)
    s = m.group(group)
    lead = len(s) - len(s.lstrip())
    return start + lead + shift, end - (len(s) - len(s.rstrip())) + shift


def _scan_tags(text: str, scan: BoxScan, spans: bool) -> str:
    """Collect the boxes inside box tags; return the text with each tag blanked to one space."""
    if "<" not in text:
        return text
    for m in TAG_RE.finditer(text):
        g = 1 if m.group(1) is not None else 2
        found = list(NUM_RE.finditer(m.group(g)))
        if not found or len(found) % 4:
            scan.malformed.append((m.group(0), f"box tag holds {len(found)} numbers, not 4k"))
            continue
        base = m.start(g)
        for i in range(0, len(found), 4):
            four = found[i : i + 4]
            raw = (float(four[0].group()), float(four[1].group()), float(four[2].group()), float(four[3].group()))
            where = tuple((base + n.start(), base + n.end()) for n in four) if spans else ()
            scan.tagged.append(BoxMention(raw, m.group(0), True, where))
    return TAG_RE.sub(" ", text)


def _rest_to_text(text: str) -> tuple[list[int], list[int]]:
    """For a text whose tags were each blanked to one space: (positions in the blanked text just
    after each blank, the matching positions in ``text``), to map offsets back."""
    rest_at, text_at = [], []
    removed = 0
    for m in TAG_RE.finditer(text):
        removed += len(m.group(0)) - 1
        rest_at.append(m.end() - removed)
        text_at.append(m.end())
    return rest_at, text_at


def scan_boxes(text: str, *, spans: bool = False) -> BoxScan:
    """Find every box in ``text`` (see the module doc for the spellings); ``spans=True`` also records
    where each coordinate sits. Never raises."""
    scan = BoxScan()
    rest = _scan_tags(text, scan, spans)
    shift_at: tuple[list[int], list[int]] | None = _rest_to_text(text) if spans and rest is not text else None

    def shift(pos: int) -> int:
        if shift_at is None:
            return 0
        k = bisect.bisect_right(shift_at[0], pos) - 1
        return 0 if k < 0 else shift_at[1][k] - shift_at[0][k]

    for m in BOX_RE.finditer(rest):
        first = 1 if m.group(1) is not None else 5
        raw = floats(m.groups()[first - 1 : first + 3])
        if raw is None:
            continue
        where = tuple(_stripped(m, g, shift(m.start(g))) for g in range(first, first + 4)) if spans else ()
        scan.untagged.append(BoxMention(raw, m.group(0), False, where))
    if not scan.untagged and not scan.tagged and not scan.malformed and len(rest) <= _BARE_MAX_CHARS:
        m = _BARE_RE.fullmatch(rest)
        if m is not None:
            raw = floats(m.groups())
            if raw is not None:  # the pattern only matches numbers
                where = tuple(m.span(g) for g in range(1, 5)) if spans else ()
                scan.untagged.append(BoxMention(raw, m.group(0), False, where))
    return scan
