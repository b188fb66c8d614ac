"""The VQA answer normalization of the official VQA evaluation (Antol et al. 2015; the
``vqaEval.py`` of the VQA API), reimplemented for speed with the same results:

1. newlines and tabs become spaces, ends stripped;
2. punctuation (the official 21 marks, ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``): a mark
   that touches a space somewhere in the answer, or any mark when the answer has a digit-comma-
   digit (``1,000``), is deleted; otherwise it becomes a space. Then every period not followed
   by a digit is deleted (``3.5`` keeps its point);
3. lower-case, split on whitespace, number words ``none``/``zero``...``ten`` -> digits, articles
   ``a an the`` dropped, apostrophe-less contractions restored (``dont`` -> ``don't``).

Differences from the official script, all on inputs VQA never has: the period rule applies to
every period (the official ``sub`` passes ``re.UNICODE`` as its count and stops after 32); the
contraction table is generated from the canonical forms (each variant with one apostrophe
removed), which reproduces the official table minus its no-op identity entries, its
unreachable capitalized keys and its one reversed entry (``somebody'd``). ``extended_numbers``
(off by default) also maps ``eleven``...``twenty``.
"""

from __future__ import annotations

import re

__all__ = ["PUNCTUATION", "NUMBER_WORDS", "ARTICLES", "CONTRACTIONS", "process_punctuation", "process_digit_article", "normalize_vqa_answer"]

PUNCTUATION: tuple[str, ...] = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS: dict[str, str] = {
    w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))
} | {"none": "0"}
_EXTENDED_NUMBER_WORDS: dict[str, str] = NUMBER_WORDS | {
    w: str(i)
    for i, w in enumerate(("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"), start=11)
}
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# The contractions the official table restores (lower-case; words such as "we'd", "it's", "we'll"
# are absent because their apostrophe-less forms are ordinary words).
_CANONICAL_CONTRACTIONS = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't "
    "he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've "
    "mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't "
    "shouldn't've somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's "
    "something'd something'd've something'll that's there'd there'd've there're there's they'd they'd've "
    "they'll they're they've 'twas wasn't we'd've we've weren't what'll what're what's what've when's "
    "where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't would've "
    "wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've"
).split()


def _one_apostrophe_dropped(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i, ch in enumerate(word) if ch == "'"]


CONTRACTIONS: dict[str, str] = {v: c for c in _CANONICAL_CONTRACTIONS for v in _one_apostrophe_dropped(c)}

_PUNCT_CHARS = "".join(PUNCTUATION)
_PUNCT_RE = re.compile("[" + re.escape(_PUNCT_CHARS) + "]")
_DIGIT_COMMA_DIGIT_RE = re.compile(r"\d,\d")
_PERIOD_RE = re.compile(r"\.(?!\d)")
_DELETE_ALL = str.maketrans("", "", _PUNCT_CHARS)


def process_punctuation(text: str) -> str:
    """Step 2 of the module doc: delete or space out punctuation, then strip periods."""
    if _PUNCT_RE.search(text) is not None:
        if _DIGIT_COMMA_DIGIT_RE.search(text) is not None:
            text = text.translate(_DELETE_ALL)
        else:
            table = {}
            for p in set(_PUNCT_RE.findall(text)):
                table[ord(p)] = "" if (p + " " in text or " " + p in text) else " "
            text = text.translate(table)
    return _PERIOD_RE.sub("", text) if "." in text else text


def process_digit_article(text: str, *, extended_numbers: bool = False) -> str:
    """Step 3 of the module doc: lower-case, number words to digits, drop articles, contractions."""
    numbers = _EXTENDED_NUMBER_WORDS if extended_numbers else NUMBER_WORDS
    out = []
    for word in text.lower().split():
        word = numbers.get(word, word)
        if word not in ARTICLES:
            out.append(CONTRACTIONS.get(word, word))
    return " ".join(out)


def normalize_vqa_answer(text: str, *, extended_numbers: bool = False) -> str:
    """Return ``text`` normalized as the official VQA evaluation does (module doc), e.g.
    ``"Two dogs."`` -> ``"2 dogs"``, ``"1,000"`` -> ``"1000"``, ``"Dont know"`` -> ``"don't know"``."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text), extended_numbers=extended_numbers)
