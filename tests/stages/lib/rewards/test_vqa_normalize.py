"""The official VQA answer normalization: each rule with known values, and the fast
implementation against a literal loop over the rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.rewards.vqa_normalize import (
    ARTICLES,
    CONTRACTIONS,
    NUMBER_WORDS,
    PUNCTUATION,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # punctuation: spaced out when it touches no space, deleted when it touches one
        ("red-white", "red white"),
        ("red - white", "red  white"),
        ("yes!", "yes "),  # "!" touches no space -> a space (split drops it later)
        ("hello, world", "hello world"),
        ("(left)", " left "),
        ("a/b", "a b"),
        ("1,000", "1000"),  # a digit-comma-digit deletes every mark
        ("1,000-2", "10002"),
        # periods: deleted unless a digit follows
        ("3.5", "3.5"),
        ("no.", "no"),
        ("st. louis", "st louis"),
        ("u.s.a.", "usa"),
        ("it's", "it's"),  # apostrophes and colons are not in the official list
        ("12:30", "12:30"),
    ],
)
def test_process_punctuation(raw, expected):
    assert process_punctuation(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("zero", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),
        ("a dog", "dog"),
        ("the  RED   car", "red car"),
        ("an apple", "apple"),
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("couldnt've", "couldn't've"),
        ("youre", "you're"),
        ("twas", "'twas"),
        ("lets", "lets"),  # an ordinary word: not in the table
        ("Im", "im"),  # the official table's capitalized keys never fire after lower-casing
    ],
)
def test_process_digit_article(raw, expected):
    assert process_digit_article(raw) == expected


def test_extended_numbers_is_opt_in():
    assert process_digit_article("twelve", extended_numbers=True) == "12"
    assert process_digit_article("twenty", extended_numbers=True) == "20"
    assert process_digit_article("twelve") == "twelve"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two dogs.", "2 dogs"),
        ("Yes", "yes"),
        ("yes.", "yes"),
        ("The cat!", "cat"),
        ("  a\tbig\ndog ", "big dog"),
        ("1,000", "1000"),
        ("3.5 meters", "3.5 meters"),
        ("Dont know", "don't know"),
        ("black and white", "black and white"),
        ("t-shirt", "t shirt"),
        ("the", ""),
    ],
)
def test_normalize_vqa_answer(raw, expected):
    assert normalize_vqa_answer(raw) == expected


def test_tables():
    assert len(PUNCTUATION) == 21 and "'" not in PUNCTUATION and ":" not in PUNCTUATION
    assert ARTICLES == {"a", "an", "the"}
    assert NUMBER_WORDS["none"] == "0" and NUMBER_WORDS["ten"] == "10" and len(NUMBER_WORDS) == 12
    assert len(CONTRACTIONS) == 113
    assert CONTRACTIONS["yall'd've"] == CONTRACTIONS["y'alld've"] == CONTRACTIONS["y'all'dve"] == "y'all'd've"
    assert all(k == k.lower() and v.count("'") == k.count("'") + 1 for k, v in CONTRACTIONS.items())


def _literal_punctuation(text: str) -> str:
    """The rule as the official script states it: one pass per mark, conditions on the input."""
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or re.search(r"(\d)(,)(\d)", text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return re.sub(r"(?!<=\d)(\.)(?!\d)", "", out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1. ,;/-!?()'\"") + ["\t", "x", "0"]), max_size=25))
def test_fast_punctuation_equals_literal_rule(text):
    assert process_punctuation(text) == _literal_punctuation(text)
