"""What makes a perturbed answer acceptable: it differs from the truth and keeps the truth's format.

Both rule and LLM injections pass through :func:`is_valid_hallucination`; an LLM output that fails
it is retried and finally replaced by a rule injection.
"""

from __future__ import annotations

import re

from stages.lib.boxes import box_skeleton, parse_box_text
from stages.perturb.vocab import NUMBER_WORDS, YES_NO

__all__ = ["MIN_SIMILARITY", "normalize", "differs", "vqa_answer_kind", "keeps_format", "is_valid_hallucination"]

# how much of the answer a hallucinated caption / OCR text must keep (rapidfuzz ratio, 0-100)
MIN_SIMILARITY = 50.0

_LETTER = re.compile(r"^\(?[A-Z][).:]?$")
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")


def normalize(text: str) -> str:
    """Case-folded text with whitespace collapsed and trailing punctuation dropped."""
    return " ".join(text.casefold().split()).rstrip(" .!")


def differs(answer: str, text: str) -> bool:
    """True when ``text`` says something other than ``answer`` (not just case, spacing or a final period)."""
    return normalize(answer) != normalize(text)


def vqa_answer_kind(text: str) -> str:
    """Classify a short answer: ``yes_no``, ``number``, ``letter`` (multiple choice) or ``text``."""
    t = text.strip().rstrip(".!")
    low = t.casefold()
    if low in YES_NO:
        return "yes_no"
    if _NUMBER.match(t) or low in NUMBER_WORDS:
        return "number"
    if _LETTER.match(t):
        return "letter"
    return "text"


def _n_words(text: str) -> int:
    return len(text.split())


def _close(answer: str, text: str) -> bool:
    from rapidfuzz import fuzz

    return fuzz.ratio(normalize(answer), normalize(text)) >= MIN_SIMILARITY


def keeps_format(answer: str, text: str, task_type: str) -> bool:
    """True when ``text`` has the form of ``answer`` for its task type.

    - grounding: the same number of boxes in the same notation (only the numbers may differ);
    - ocr: the same number of lines, length within 0.5x .. 2x (+4 characters);
    - vqa: the same answer kind (yes/no, number, letter, text) and at most 2x (+3) the words;
    - caption: word count within 0.5x .. 2x (+5).
    Captions, OCR text and VQA answers of 4+ words must also stay close to the answer (rapidfuzz
    ratio >= :data:`MIN_SIMILARITY`): a hallucination edits the answer, it does not replace it.
    Empty text never keeps a format.
    """
    if not text.strip():
        return False
    if task_type == "grounding":
        a, b = parse_box_text(answer), parse_box_text(text)
        if a is None or b is None:
            return False
        return len(a.values) == len(b.values) and box_skeleton(answer) == box_skeleton(text)
    if task_type == "ocr":
        same_lines = len(answer.strip().splitlines()) == len(text.strip().splitlines())
        return same_lines and 0.5 * len(answer) <= len(text) <= 2 * len(answer) + 4 and _close(answer, text)
    if task_type == "vqa":
        if vqa_answer_kind(answer) != vqa_answer_kind(text) or _n_words(text) > 2 * _n_words(answer) + 3:
            return False
        return _n_words(answer) < 4 or _close(answer, text)
    return 0.5 * _n_words(answer) <= _n_words(text) <= 2 * _n_words(answer) + 5 and _close(answer, text)


def is_valid_hallucination(answer: str, text: str, task_type: str) -> bool:
    """True when ``text`` differs from ``answer`` and keeps its format (see :func:`keeps_format`)."""
    return differs(answer, text) and keeps_format(answer, text, task_type)
