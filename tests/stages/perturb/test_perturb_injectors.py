"""Each rule injector changes what its kind names and nothing else, keeps the format, and is seeded."""

from __future__ import annotations

import difflib
import random
import re

import pytest

from stages.lib.boxes import box_skeleton, parse_box_text
from stages.perturb.formats import is_valid_hallucination
from stages.perturb.injectors import INJECTORS, InjectContext, InjectorKind, kinds_for_task
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

CAPTION = "Two white dogs chase a red frisbee on the left of a bench, and 3 people sit above the car."

# one text per registry kind, with sites of that kind (a new kind without a sample fails below)
SAMPLES: dict[InjectorKind, tuple[str, str]] = {
    InjectorKind.OBJECT: ("caption", CAPTION),
    InjectorKind.COLOR: ("caption", CAPTION),
    InjectorKind.NUMBER: ("caption", CAPTION),
    InjectorKind.SPATIAL: ("caption", CAPTION),
    InjectorKind.YES_NO: ("vqa", "Yes"),
    InjectorKind.BOX: ("grounding", "The dog is at [10, 20, 110, 220] and the cat at [200, 40, 260, 90]."),
    InjectorKind.OCR: ("ocr", "INVOICE No. 10583\nModern Clothing Co."),
}


def _object_ok(old: str, new: str) -> bool:
    if old in CO_OCCURRENCE:
        return new in CO_OCCURRENCE[old]
    singular = singular_of(old)
    return singular is not None and new in {plural_of(c) for c in CO_OCCURRENCE[singular]}


def _number_ok(old: str, new: str) -> bool:
    if old.isdigit() and new.isdigit():
        return 1 <= abs(int(old) - int(new)) <= 2
    return old in NUMBER_WORDS and new in NUMBER_WORDS and 1 <= abs(NUMBER_WORDS.index(old) - NUMBER_WORDS.index(new)) <= 2


WORD_CHECKS = {
    InjectorKind.OBJECT: _object_ok,
    InjectorKind.COLOR: lambda old, new: old in COLORS and new in COLORS and old != new,
    InjectorKind.NUMBER: _number_ok,
    InjectorKind.SPATIAL: lambda old, new: SPATIAL_SWAPS.get(old) == new,
    InjectorKind.YES_NO: lambda old, new: YES_NO.get(old) == new,
}


def _word_diffs(a: str, b: str) -> list[tuple[str, str]]:
    """Independent diff: tokens are words, numbers and single other characters."""
    ta, tb = re.findall(r"\w+|\W", a), re.findall(r"\w+|\W", b)
    ops = difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes()
    return [("".join(ta[i1:i2]), "".join(tb[j1:j2])) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _check_box(old: str, new: str, ctx: InjectContext) -> None:
    a, b = parse_box_text(old), parse_box_text(new)
    assert a is not None and b is not None and len(a.values) == len(b.values)
    assert box_skeleton(old) == box_skeleton(new)  # only the numbers changed
    assert a.decimals == b.decimals
    for box_a, box_b in zip(a.boxes, b.boxes):
        assert ctx.iou_band[0] <= _raster_iou(box_a, box_b) <= ctx.iou_band[1]


def _raster_iou(a, b) -> float:
    """IoU by counting unit cells on the integer grid (boxes here have integer corners)."""
    cells_a = {(x, y) for x in range(int(a[0]), int(a[2])) for y in range(int(a[1]), int(a[3]))}
    cells_b = {(x, y) for x in range(int(b[0]), int(b[2])) for y in range(int(b[1]), int(b[3]))}
    return len(cells_a & cells_b) / len(cells_a | cells_b)


_CONF_CHARS_OLD = set("".join(OCR_CONFUSABLES))
_CONF_CHARS_NEW = set("".join(v for vs in OCR_CONFUSABLES.values() for v in vs))


def _check_ocr(old: str, new: str) -> None:
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag != "equal":
            assert set(old[i1:i2]) <= _CONF_CHARS_OLD, (old[i1:i2], new[j1:j2])
            assert set(new[j1:j2]) <= _CONF_CHARS_NEW, (old[i1:i2], new[j1:j2])
    # every character that is in no confusable pair is untouched, in order
    keep = _CONF_CHARS_OLD | _CONF_CHARS_NEW
    assert [c for c in old if c not in keep] == [c for c in new if c not in keep]


def test_every_registered_kind_has_a_sample():
    assert set(SAMPLES) == set(INJECTORS) == set(InjectorKind)


@pytest.mark.parametrize("kind", list(InjectorKind))
def test_injector_changes_only_its_kind(kind: InjectorKind):
    task_type, text = SAMPLES[kind]
    ctx = InjectContext(task_type=task_type, width=320, height=240, iou_band=(0.1, 0.5), max_edits=2)
    assert kind in kinds_for_task(task_type, list(InjectorKind))
    for seed in range(25):
        inj = INJECTORS[kind].fn(text, random.Random(seed), ctx)
        assert inj is not None and inj.kind == kind.value
        assert is_valid_hallucination(text, inj.text, task_type)
        if kind == InjectorKind.BOX:
            _check_box(text, inj.text, ctx)
        elif kind == InjectorKind.OCR:
            _check_ocr(text, inj.text)
            assert text.count("\n") == inj.text.count("\n")
        else:
            diffs = _word_diffs(text, inj.text)
            assert 1 <= len(diffs) <= ctx.max_edits
            for old, new in diffs:
                assert WORD_CHECKS[kind](old.lower(), new.lower()), (kind, old, new)
        # the recorded changes point at what was there
        for change in inj.changes:
            if "start" in change:
                assert text[change["start"] : change["start"] + len(change["old"])] == change["old"]


@pytest.mark.parametrize("kind", list(InjectorKind))
def test_injector_is_deterministic_per_seed(kind: InjectorKind):
    task_type, text = SAMPLES[kind]
    ctx = InjectContext(task_type=task_type, width=320, height=240)
    first = INJECTORS[kind].fn(text, random.Random(7), ctx)
    again = INJECTORS[kind].fn(text, random.Random(7), ctx)
    assert first == again
    texts = {INJECTORS[kind].fn(text, random.Random(s), ctx).text for s in range(20)}
    assert len(texts) > 1 or kind == InjectorKind.YES_NO  # "Yes" has a single opposite


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (InjectorKind.OBJECT, "A zebra grazes."),
        (InjectorKind.COLOR, "A dog on a bench."),
        (InjectorKind.NUMBER, "A dog, 1.5 meters tall, in 3rd place."),
        (InjectorKind.SPATIAL, "A dog on a bench."),
        (InjectorKind.YES_NO, "Maybe"),
        (InjectorKind.BOX, "no box here"),
        (InjectorKind.OCR, "XY 347 #"),
    ],
)
def test_injector_returns_none_without_a_site(kind: InjectorKind, text: str):
    ctx = InjectContext(task_type=next(iter(INJECTORS[kind].task_types)))
    assert INJECTORS[kind].fn(text, random.Random(0), ctx) is None


def test_case_and_plurals_are_kept():
    ctx = InjectContext(task_type="caption", max_edits=1)
    inj = INJECTORS[InjectorKind.OBJECT].fn("Dogs", random.Random(3), ctx)
    assert inj is not None and inj.text[0].isupper()
    assert inj.text.lower() in {plural_of(c) for c in CO_OCCURRENCE["dog"]}
    inj = INJECTORS[InjectorKind.COLOR].fn("RED car", random.Random(0), ctx)
    assert inj is not None and inj.text.split()[0].isupper()


def test_number_keeps_width_of_zero_padded_digits():
    ctx = InjectContext(task_type="caption", max_edits=1)
    inj = INJECTORS[InjectorKind.NUMBER].fn("room 07", random.Random(0), ctx)
    assert inj is not None and re.fullmatch(r"room \d\d", inj.text)


def test_kinds_for_task_filters_by_task_type():
    assert kinds_for_task("grounding", list(InjectorKind)) == [InjectorKind.BOX]
    assert kinds_for_task("ocr", list(InjectorKind)) == [InjectorKind.OCR]
    assert InjectorKind.YES_NO in kinds_for_task("vqa", list(InjectorKind))
    assert InjectorKind.YES_NO not in kinds_for_task("caption", list(InjectorKind))
    assert kinds_for_task("caption", [InjectorKind.BOX]) == []
