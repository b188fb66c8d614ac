"""Rule-based hallucination injectors: one function per kind of error, in a registry.

Each injector takes the current answer text, a seeded ``random.Random`` and an
:class:`InjectContext`, and returns an :class:`Injection` (the new text, what changed) or None when
the text offers nothing of its kind (no colour word to swap, no box to move). An injector changes
only what its kind names: the colour injector rewrites colour words and nothing else.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from stages.lib.boxes import parse_box_text
from stages.perturb.box_band import place_in_band, written_bounds
from stages.perturb.vocab import (
    CO_OCCURRENCE,
    COLORS,
    NUMBER_WORDS,
    OCR_CONFUSABLES,
    SPATIAL_SWAPS,
    YES_NO,
    plural_of,
    singular_of,
)

__all__ = [
    "InjectorKind",
    "InjectContext",
    "Injection",
    "InjectorInfo",
    "INJECTORS",
    "kinds_for_task",
    "splice",
]


class InjectorKind(StrEnum):
    """The kinds of injected error (names used in config and recorded per row)."""

    OBJECT = "object"
    COLOR = "color"
    NUMBER = "number"
    SPATIAL = "spatial"
    YES_NO = "yes_no"
    BOX = "box"
    OCR = "ocr"


@dataclass(frozen=True)
class InjectContext:
    """What an injector may need besides the text: the task type, image size, IoU band, edit budget."""

    task_type: str
    width: int | None = None
    height: int | None = None
    iou_band: tuple[float, float] = (0.1, 0.5)
    max_edits: int = 2


@dataclass(frozen=True)
class Injection:
    """One applied injection: the new text, its kind, and each change (``old``/``new``, or box IoUs)."""

    text: str
    kind: str
    changes: tuple[dict[str, Any], ...]


Injector = Callable[[str, random.Random, InjectContext], "Injection | None"]


@dataclass(frozen=True)
class InjectorInfo:
    """A registry entry: the function, the task types it applies to and a one-line description."""

    fn: Injector
    task_types: frozenset[str]
    description: str


_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z]+(?![A-Za-z])")
# words (number words are picked by the replacer) or integers that are not part of a decimal, a
# thousands group or a word ("1.5", "1,000", "3rd", "x2")
_COUNT = re.compile(rf"{_WORD.pattern}|(?<![\w.,])\d+(?![.,]?\d|\w)")


def _match_case(src: str, repl: str) -> str:
    if src.isupper() and len(src) > 1:
        return repl.upper()
    if src[:1].isupper():
        return repl[:1].upper() + repl[1:]
    return repl


def splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Return ``text`` with each non-overlapping ``(start, end, replacement)`` edit applied."""
    out, last = [], 0
    for start, end, new in sorted(edits):
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


def _substitute(
    text: str,
    rng: random.Random,
    ctx: InjectContext,
    kind: InjectorKind,
    pattern: re.Pattern[str],
    replace: Callable[[str, random.Random], str | None],
) -> Injection | None:
    """Replace 1..max_edits randomly chosen matches of ``pattern`` for which ``replace`` has an answer."""
    sites = []
    for m in pattern.finditer(text):
        new = replace(m.group().lower(), rng)
        if new is not None:
            sites.append((m.start(), m.end(), m.group(), _match_case(m.group(), new)))
    if not sites:
        return None
    chosen = sorted(rng.sample(sites, rng.randint(1, min(ctx.max_edits, len(sites)))))
    edits = [(start, end, new) for start, end, _, new in chosen]
    changes = tuple({"old": old, "new": new, "start": start} for start, _, old, new in chosen)
    return Injection(splice(text, edits), kind.value, changes)


def _replace_object(word: str, rng: random.Random) -> str | None:
    if word in CO_OCCURRENCE:
        return rng.choice(CO_OCCURRENCE[word])
    singular = singular_of(word)
    if singular is not None:
        return plural_of(rng.choice(CO_OCCURRENCE[singular]))
    return None


_GRAYS = {"gray", "grey", "silver"}


def _replace_color(word: str, rng: random.Random) -> str | None:
    if word not in COLORS:
        return None
    same = _GRAYS if word in _GRAYS else {word}
    return rng.choice([c for c in COLORS if c not in same])


def _other_count(n: int, rng: random.Random, limit: int | None = None) -> int:
    options = [m for m in (n - 2, n - 1, n + 1, n + 2) if m >= 0 and m != n and (limit is None or m <= limit)]
    return rng.choice(options)


def _replace_count(token: str, rng: random.Random) -> str | None:
    if token.isdigit():
        return str(_other_count(int(token), rng)).zfill(len(token))
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[_other_count(NUMBER_WORDS.index(token), rng, limit=len(NUMBER_WORDS) - 1)]
    return None


def inject_object(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Swap object nouns (singular or plural) for objects that co-occur with them."""
    return _substitute(text, rng, ctx, InjectorKind.OBJECT, _WORD, _replace_object)


def inject_color(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Swap colour words for other colours."""
    return _substitute(text, rng, ctx, InjectorKind.COLOR, _WORD, _replace_color)


def inject_number(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Change counts: integers written as digits or as number words (zero..twenty), by 1 or 2."""
    return _substitute(text, rng, ctx, InjectorKind.NUMBER, _COUNT, _replace_count)


def inject_spatial(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Flip spatial relations: left/right, above/below, top/bottom, front/back, inside/outside."""
    return _substitute(text, rng, ctx, InjectorKind.SPATIAL, _WORD, lambda w, _r: SPATIAL_SWAPS.get(w))


def inject_yes_no(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Flip yes/no (and true/false) answers."""
    return _substitute(text, rng, ctx, InjectorKind.YES_NO, _WORD, lambda w, _r: YES_NO.get(w))


def inject_box(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Move or rescale every box so its IoU with the original lies in ``ctx.iou_band``, keeping the notation."""
    parsed = parse_box_text(text)
    if parsed is None or not (ctx.width and ctx.height):
        return None
    bounds = written_bounds(parsed, ctx.width, ctx.height)
    placed = place_in_band(parsed, ctx.iou_band, rng, bounds)
    if placed is None:
        return None
    new_text, ious = placed
    new_boxes = parse_box_text(new_text).boxes  # type: ignore[union-attr]
    changes = tuple(
        {"box": i, "old": list(old), "new": list(new), "iou": round(iou, 6)}
        for i, (old, new, iou) in enumerate(zip(parsed.boxes, new_boxes, ious))
    )
    return Injection(new_text, InjectorKind.BOX.value, changes)


_CONFUSABLE_KEYS = sorted(OCR_CONFUSABLES, key=len, reverse=True)


def inject_ocr(text: str, rng: random.Random, ctx: InjectContext) -> Injection | None:
    """Substitute visually confusable characters (0/O, 1/l/I, 5/S, 8/B, rn/m, cl/d, vv/w ...)."""
    sites: list[tuple[int, int, str]] = []
    for key in _CONFUSABLE_KEYS:
        sites.extend((m.start(), m.start() + len(key), key) for m in re.finditer(f"(?={re.escape(key)})", text))
    if not sites:
        return None
    rng.shuffle(sites)
    want = rng.randint(1, ctx.max_edits)
    chosen: list[tuple[int, int, str]] = []
    for start, end, key in sites:
        if len(chosen) == want:
            break
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, key))
    edits, changes = [], []
    for start, end, key in sorted(chosen):
        new = rng.choice(OCR_CONFUSABLES[key])
        edits.append((start, end, new))
        changes.append({"old": key, "new": new, "start": start})
    return Injection(splice(text, edits), InjectorKind.OCR.value, tuple(changes))


_TEXT_TASKS = frozenset({"vqa", "caption"})

INJECTORS: dict[InjectorKind, InjectorInfo] = {
    InjectorKind.OBJECT: InjectorInfo(inject_object, _TEXT_TASKS, inject_object.__doc__ or ""),
    InjectorKind.COLOR: InjectorInfo(inject_color, _TEXT_TASKS, inject_color.__doc__ or ""),
    InjectorKind.NUMBER: InjectorInfo(inject_number, _TEXT_TASKS, inject_number.__doc__ or ""),
    InjectorKind.SPATIAL: InjectorInfo(inject_spatial, _TEXT_TASKS, inject_spatial.__doc__ or ""),
    InjectorKind.YES_NO: InjectorInfo(inject_yes_no, frozenset({"vqa"}), inject_yes_no.__doc__ or ""),
    InjectorKind.BOX: InjectorInfo(inject_box, frozenset({"grounding"}), inject_box.__doc__ or ""),
    InjectorKind.OCR: InjectorInfo(inject_ocr, frozenset({"ocr"}), inject_ocr.__doc__ or ""),
}


def kinds_for_task(task_type: str, kinds: list[InjectorKind] | tuple[InjectorKind, ...]) -> list[InjectorKind]:
    """Return the configured ``kinds`` that apply to ``task_type``, in registry order."""
    wanted = set(kinds)
    return [k for k, info in INJECTORS.items() if k in wanted and task_type in info.task_types]
