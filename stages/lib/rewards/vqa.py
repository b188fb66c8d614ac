"""VQA accuracy: open-ended answers (soft accuracy) and multiple choice (by letter).

Open-ended: the prediction and every annotator answer go through
:func:`~stages.lib.rewards.vqa_normalize.normalize_vqa_answer` (a leading ``Answer:`` / ``The answer
is`` label is dropped from the prediction first). With several annotator answers the reward is
the VQA soft accuracy, ``min(#matching annotators / 3, 1)`` (``soft="min3"``) or the official
leave-one-out average of that over the 10 annotator subsets (``soft="leave_one_out"``); with
one answer it is exact match after normalization.

Multiple choice (``choices`` given, in letter order A, B, ...): the chosen option is read from,
in order: a bare letter (``B``, ``(B)``, ``B.``), a leading letter (``B. cat``, ``(B) cat``), a
cue (``Answer: B``, ``the answer is (b)``, ``option B``), then the option text itself (the
normalized answer equals one option, or contains exactly one option as whole words once options
contained in longer contained options are set aside). Reward 1 when it is the correct option.
The correct option comes from the ground-truth answer by the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from stages.lib.rewards.result import GroundTruthError, RewardResult, gc_paused, snippet
from stages.lib.rewards.vqa_normalize import normalize_vqa_answer

__all__ = ["SoftAccuracy", "SOFT_ACCURACY_MODES", "VqaTruth", "extract_choice", "prepare_vqa", "score_vqa", "score_vqa_batch", "vqa_reward"]

SoftAccuracy = Literal["min3", "leave_one_out"]
SOFT_ACCURACY_MODES: tuple[str, ...] = get_args(SoftAccuracy)

_ANSWER_LABEL_RE = re.compile(r"\s*(?:the\s+)?(?:final\s+)?answer(?:\s+is\b|\s*:)\s*", re.IGNORECASE)
_BARE_LETTER_RE = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
_LEADING_LETTER_RE = re.compile(r"\s*(?:\(([A-Za-z])\)|([A-Z])[.:)])(?:\s|$)")
# The cue word is case-insensitive; after it a letter is "(x)", an upper-case letter, or a
# lower-case one closing the phrase ("answer: c.") so that "the answer is a cat" is not option A.
_CUE_LETTER = r"\s*(?::\s*)?(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=\s*(?:[.,;!)]|$)))"
_ANSWER_CUE_RE = re.compile(r"(?i:\banswer(?:\s+is)?)" + _CUE_LETTER)
_OPTION_CUE_RE = re.compile(r"(?i:\b(?:option|choice))" + _CUE_LETTER)


@dataclass(frozen=True, slots=True)
class VqaTruth:
    """Normalized annotator answers (duplicates kept: they are votes), or the correct option."""

    answers: tuple[str, ...]
    soft: str
    extended_numbers: bool
    choices: tuple[str, ...] = ()
    correct: int = -1


def _letter(groups: tuple[str | None, ...], n: int) -> int | None:
    letter = next(g for g in groups if g is not None)
    index = ord(letter.upper()) - ord("A")
    return index if 0 <= index < n else None


def extract_choice(text: str, normalized_choices: Sequence[str], *, extended_numbers: bool = False) -> tuple[int | None, str]:
    """Return (index of the chosen option or None, which rule found it) for a multiple-choice
    answer; ``normalized_choices`` are the options already passed through the VQA normalization."""
    n = len(normalized_choices)
    s = text.strip()
    if not s:
        return None, "empty"
    if len(s) <= 4 and (m := _BARE_LETTER_RE.fullmatch(s)) is not None:
        return _letter(m.groups(), n), "letter"
    if (m := _LEADING_LETTER_RE.match(s)) is not None and (i := _letter(m.groups(), n)) is not None:
        return i, "letter"
    for cue in (_ANSWER_CUE_RE, _OPTION_CUE_RE):
        if (m := cue.search(s)) is not None and (i := _letter(m.groups(), n)) is not None:
            return i, "cue"
    norm = normalize_vqa_answer(s, extended_numbers=extended_numbers)
    if not norm:
        return None, "empty"
    if norm in normalized_choices:
        return normalized_choices.index(norm), "text"
    padded = f" {norm} "
    found = [i for i, c in enumerate(normalized_choices) if c and f" {c} " in padded]
    found = [i for i in found if not any(j != i and f" {normalized_choices[i]} " in f" {normalized_choices[j]} " for j in found)]
    return (found[0], "text") if len(found) == 1 else (None, "no option recognized")


def prepare_vqa(
    answers: str | Sequence[str] | None,
    choices: Sequence[str] | None = None,
    *,
    soft: str = "min3",
    extended_numbers: bool = False,
) -> VqaTruth:
    """Normalize the ground truth once per task. With ``choices``, the first answer names the
    correct option (letter or option text). Raises :class:`GroundTruthError` when there is no
    answer or the answer is not one of the choices."""
    if soft not in SOFT_ACCURACY_MODES:
        raise ValueError(f"unknown soft accuracy {soft!r}; available: {', '.join(SOFT_ACCURACY_MODES)}")
    raw = [answers] if isinstance(answers, str) else [a for a in (answers or []) if a is not None]
    raw = [a for a in raw if a.strip()]
    if not raw:
        raise GroundTruthError(f"no ground-truth answer (got {snippet(repr(answers))})")
    if choices:
        opts = tuple(normalize_vqa_answer(c or "", extended_numbers=extended_numbers) for c in choices)
        correct, _ = extract_choice(raw[0], opts, extended_numbers=extended_numbers)
        if correct is None:
            raise GroundTruthError(f"ground-truth answer {snippet(raw[0])!r} is neither a letter nor the text of one of {len(opts)} choices")
        return VqaTruth((), soft, extended_numbers, opts, correct)
    norm = tuple(normalize_vqa_answer(a, extended_numbers=extended_numbers) for a in raw)
    if not any(norm):
        raise GroundTruthError(f"every ground-truth answer is empty after VQA normalization (got {snippet(repr(raw))})")
    return VqaTruth(norm, soft, extended_numbers)


def _soft_accuracy(matches: int, n: int, soft: str) -> float:
    if soft == "min3":
        return min(matches / 3.0, 1.0)
    # Official: average over the n leave-one-out subsets of min(#matches among the others / 3, 1).
    return (matches * min((matches - 1) / 3.0, 1.0) + (n - matches) * min(matches / 3.0, 1.0)) / n


def _score_choice(text: str, truth: VqaTruth) -> RewardResult:
    index, how = extract_choice(text, truth.choices, extended_numbers=truth.extended_numbers)
    detail = {"mode": "choice", "correct": chr(ord("A") + truth.correct), "rule": how}
    if index is None:
        detail["reason"] = "no choice recognized in the output" if how != "empty" else "empty output"
        return RewardResult(0.0, False, detail)
    detail["choice"] = chr(ord("A") + index)
    return RewardResult(1.0 if index == truth.correct else 0.0, True, detail)


def _score_open(norm: str, truth: VqaTruth) -> RewardResult:
    n = len(truth.answers)
    matches = truth.answers.count(norm) if norm else 0
    detail = {"mode": "soft" if n > 1 else "exact", "normalized": snippet(norm), "matches": matches, "n_answers": n}
    if not norm:
        detail["reason"] = "empty answer after normalization"
        return RewardResult(0.0, False, detail)
    reward = _soft_accuracy(matches, n, truth.soft) if n > 1 else float(matches > 0)
    return RewardResult(reward, True, detail)


def _normalize_prediction(text: str, extended_numbers: bool) -> str:
    text = text or ""
    if (m := _ANSWER_LABEL_RE.match(text)) is not None:
        text = text[m.end() :]
    return normalize_vqa_answer(text, extended_numbers=extended_numbers)


def score_vqa(text: str, truth: VqaTruth) -> RewardResult:
    """Score one output against prepared ground truth; never raises on model output."""
    if truth.choices:
        return _score_choice(text or "", truth)
    return _score_open(_normalize_prediction(text, truth.extended_numbers), truth)


def score_vqa_batch(texts: Sequence[str], truths: Sequence[VqaTruth]) -> list[RewardResult]:
    """Score many outputs, normalizing each distinct output text once (N samples of one prompt
    often repeat the same short answer)."""
    cache: dict[tuple[str, bool], str] = {}
    out = []
    with gc_paused():
        for text, truth in zip(texts, truths):
            if truth.choices:
                out.append(_score_choice(text or "", truth))
                continue
            key = (text, truth.extended_numbers)
            norm = cache.get(key)
            if norm is None:
                norm = cache[key] = _normalize_prediction(text, truth.extended_numbers)
            out.append(_score_open(norm, truth))
    return out


def vqa_reward(
    text: str,
    answers: str | Sequence[str],
    choices: Sequence[str] | None = None,
    *,
    soft: str = "min3",
    extended_numbers: bool = False,
) -> RewardResult:
    """VQA reward of ``text``: soft accuracy against several annotator ``answers``, exact match
    against one, or, with ``choices``, 1 when the chosen option is the correct one. Unreadable
    output -> reward 0, ``parse_ok`` false. Raises :class:`GroundTruthError` only for unusable
    ground truth."""
    return score_vqa(text, prepare_vqa(answers, choices, soft=soft, extended_numbers=extended_numbers))
