"""Rule-mode hallucinations: distinct, valid, seeded, and each recorded change is exactly what happened."""

from __future__ import annotations

import pytest

from stages.perturb.formats import differs, is_valid_hallucination, keeps_format, vqa_answer_kind
from stages.perturb.hallucinate import rule_hallucinate, rule_hallucinations
from stages.perturb.injectors import InjectContext, InjectorKind, kinds_for_task, splice

ALL = list(InjectorKind)
CAPTION = "A white dog sits on the left of a red bench near two bicycles and 3 people."


@pytest.mark.parametrize(
    ("task_type", "answer"),
    [
        ("caption", CAPTION),
        ("vqa", "2"),
        ("vqa", "red"),
        ("grounding", "[4, 6, 30, 28]"),
        ("ocr", "INVOICE 10583"),
    ],
)
def test_rule_hallucinations_are_distinct_valid_and_seeded(task_type, answer):
    ctx = InjectContext(task_type=task_type, width=48, height=40)
    made = rule_hallucinations(answer, ctx, ALL, n=3, base_seed=0, key="task")
    assert len(made) == 3
    assert len({h.text for h in made}) == 3
    for h in made:
        assert is_valid_hallucination(answer, h.text, task_type)
        assert set(h.kinds) <= {k.value for k in kinds_for_task(task_type, ALL)}
    assert made == rule_hallucinations(answer, ctx, ALL, n=3, base_seed=0, key="task")
    assert made != rule_hallucinations(answer, ctx, ALL, n=3, base_seed=1, key="task")


def test_composed_kinds_record_exactly_their_edits():
    ctx = InjectContext(task_type="caption")
    for seed in range(40):
        h = rule_hallucinate(CAPTION, ctx, ALL, seed=seed, max_kinds=4)
        assert h is not None
        # replaying the recorded (old -> new) edits on the answer gives the text: nothing else changed
        edits = [(c["start"], c["start"] + len(c["old"]), c["new"]) for c in h.changes]
        assert splice(CAPTION, edits) == h.text
        assert {c["kind"] for c in h.changes} == set(h.kinds)
        assert all(CAPTION[s:e] == c["old"] for (s, e, _), c in zip(edits, h.changes))


def test_fewer_rows_when_the_answer_offers_fewer_errors():
    made = rule_hallucinations("yes", InjectContext(task_type="vqa"), ALL, n=3, base_seed=0, key="t")
    assert [h.text for h in made] == ["no"]


@pytest.mark.parametrize(
    ("answer", "task_type", "kinds"),
    [
        ("", "caption", ALL),
        ("   ", "vqa", ALL),
        ("A zebra grazes quietly.", "caption", ALL),  # nothing any kind can change
        (CAPTION, "caption", [InjectorKind.BOX]),  # no configured kind applies to captions
    ],
)
def test_no_hallucination_when_nothing_applies(answer, task_type, kinds):
    assert rule_hallucinations(answer, InjectContext(task_type=task_type), kinds, n=2, base_seed=0, key="t") == []


@pytest.mark.parametrize(
    ("answer", "text", "task_type", "ok"),
    [
        ("[1, 2, 30, 40]", "[3, 2, 33, 40]", "grounding", True),
        ("[1, 2, 30, 40]", "[3, 2, 33, 40] maybe", "grounding", False),  # words added
        ("[1, 2, 30, 40]", "(3,2),(33,40)", "grounding", False),  # other notation
        ("[1, 2, 30, 40]", "[1, 2, 30, 40], [5, 5, 9, 9]", "grounding", False),  # extra box
        ("yes", "no", "vqa", True),
        ("yes", "3", "vqa", False),
        ("2", "three", "vqa", True),
        ("B", "C", "vqa", True),
        ("red", "a long sentence about many different things here", "vqa", False),
        ("HELLO\nWORLD", "HELL0\nWORLD", "ocr", True),
        ("HELLO\nWORLD", "HELL0 WORLD", "ocr", False),
        ("A dog on a bench.", "A cat on a bench.", "caption", True),
        ("A dog on a bench.", "", "caption", False),
        ("A dog on a bench.", "zz qq ## yy", "caption", False),  # right length, but not an edit of the answer
        ("INVOICE 10583", "X9 qq 7a-bbbb", "ocr", False),
    ],
)
def test_keeps_format(answer, text, task_type, ok):
    assert keeps_format(answer, text, task_type) is ok


def test_differs_ignores_case_spacing_and_final_period():
    assert not differs("A dog.", "a  dog")
    assert differs("A dog.", "A cat.")


@pytest.mark.parametrize(
    ("text", "kind"), [("Yes", "yes_no"), ("12", "number"), ("seven", "number"), ("(C)", "letter"), ("blue", "text")]
)
def test_vqa_answer_kind(text, kind):
    assert vqa_answer_kind(text) == kind


@pytest.mark.parametrize("fmt", ["qwen2_vl", "paligemma", "kosmos2", "llava", "gemini"])
def test_grounding_hallucinations_in_a_family_format(fmt):
    from stages.lib.boxes import get_format

    answer = get_format(fmt).write([[100.0, 80.0, 420.0, 400.0]], 640, 480)
    ctx = InjectContext(task_type="grounding", width=640, height=480, box_format=fmt)
    made = rule_hallucinations(answer, ctx, ALL, n=2, base_seed=0, key="task")
    assert len(made) == 2
    for h in made:
        assert h.kinds == ("box",) and is_valid_hallucination(answer, h.text, "grounding", fmt)
        assert 0.1 <= h.changes[0]["iou"] <= 0.5


def test_keeps_format_in_a_family_format_masks_the_numbers():
    a = "<|box_start|>(100,100),(500,500)<|box_end|>"
    assert keeps_format(a, "<|box_start|>(120,90),(480,510)<|box_end|>", "grounding", "qwen2_vl")
    assert not keeps_format(a, "[120, 90, 480, 510]", "grounding", "qwen2_vl")
    assert not keeps_format(a, a + a, "grounding", "qwen2_vl")  # one box more
    assert keeps_format("<loc0102><loc0102><loc0512><loc0512>", "<loc0110><loc0090><loc0500><loc0530>", "grounding", "paligemma")
    assert not keeps_format("no box", "no box", "grounding", "qwen2_vl")
