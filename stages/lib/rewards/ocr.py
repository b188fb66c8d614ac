"""OCR reward: 1 - normalized Levenshtein distance, or ANLS.

normalized distance = edit distance / max(len(prediction), len(reference)) (rapidfuzz
``Levenshtein``). With several references (e.g. DocVQA answer variants) the best one counts.
- ``"edit"`` metric: reward = 1 - normalized distance.
- ANLS (Biten et al., ICCV 2019): reward = 1 - nd when nd < threshold (0.5), else 0. Following
  the DocVQA evaluation, ANLS compares case-insensitively unless ``ignore_case`` says otherwise.
Normalization before comparing: whitespace runs collapsed to one space and the ends stripped
(``normalize_whitespace``), optional lower-casing (``ignore_case``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from stages.lib.rewards.result import GroundTruthError, RewardResult, gc_paused, snippet

__all__ = ["OcrTruth", "normalize_ocr_text", "prepare_ocr", "score_ocr", "score_ocr_batch", "ocr_reward"]


@dataclass(frozen=True, slots=True)
class OcrTruth:
    """Normalized reference strings and how they were normalized (the prediction gets the same)."""

    refs: tuple[str, ...]
    anls: bool
    threshold: float
    ignore_case: bool
    normalize_whitespace: bool


def normalize_ocr_text(text: str, *, ignore_case: bool, normalize_whitespace: bool) -> str:
    """Return ``text`` with whitespace runs collapsed (and ends stripped) and/or lower-cased."""
    if normalize_whitespace:
        text = " ".join(text.split())
    return text.lower() if ignore_case else text


def prepare_ocr(
    gt_text: str | Sequence[str] | None,
    *,
    anls: bool = False,
    anls_threshold: float = 0.5,
    ignore_case: bool | None = None,
    normalize_whitespace: bool = True,
) -> OcrTruth:
    """Normalize the reference(s) once per task. ``ignore_case=None`` means the metric's usual
    setting (case-sensitive edit similarity, case-insensitive ANLS). Raises
    :class:`GroundTruthError` when no non-empty reference is left."""
    if not 0.0 <= anls_threshold <= 1.0:
        raise ValueError(f"anls_threshold must be in [0, 1], got {anls_threshold!r}")
    fold = anls if ignore_case is None else ignore_case
    raw = [gt_text] if isinstance(gt_text, str) else list(gt_text or [])
    refs = []
    for r in raw:
        if r is None:
            continue
        n = normalize_ocr_text(r, ignore_case=fold, normalize_whitespace=normalize_whitespace)
        if n and n not in refs:
            refs.append(n)
    if not refs:
        raise GroundTruthError(f"no non-empty ground-truth text (got {snippet(repr(gt_text))})")
    return OcrTruth(tuple(refs), anls, anls_threshold, fold, normalize_whitespace)


def _finish(pred: str, truth: OcrTruth, dist: int, best: int) -> RewardResult:
    ref = truth.refs[best]
    nd = dist / max(len(pred), len(ref))
    reward = 1.0 - nd
    if truth.anls and nd >= truth.threshold:
        reward = 0.0
    detail = {"metric": "anls" if truth.anls else "edit", "edit_distance": dist, "normalized_distance": nd,
              "ref_index": best}
    if not pred:
        detail["reason"] = "empty output"
        return RewardResult(0.0, False, detail)
    return RewardResult(reward, True, detail)


def score_ocr(text: str, truth: OcrTruth) -> RewardResult:
    """Score one output against prepared references; never raises on model output."""
    pred = normalize_ocr_text(text or "", ignore_case=truth.ignore_case, normalize_whitespace=truth.normalize_whitespace)
    best, best_nd, best_dist = 0, 2.0, 0
    for i, ref in enumerate(truth.refs):
        dist = Levenshtein.distance(pred, ref)
        nd = dist / max(len(pred), len(ref))
        if nd < best_nd:
            best, best_nd, best_dist = i, nd, dist
    return _finish(pred, truth, best_dist, best)


def score_ocr_batch(texts: Sequence[str], truths: Sequence[OcrTruth]) -> list[RewardResult]:
    """Score many outputs. A plain loop: rapidfuzz's C distance dominates and a
    ``process.cpdist`` batch measured no faster (bench/bench_rewards.py)."""
    with gc_paused():
        return [score_ocr(t, tr) for t, tr in zip(texts, truths)]


def ocr_reward(
    text: str,
    gt_text: str | Sequence[str],
    *,
    anls: bool = False,
    anls_threshold: float = 0.5,
    ignore_case: bool | None = None,
    normalize_whitespace: bool = True,
) -> RewardResult:
    """OCR reward of ``text`` against ``gt_text`` (or the best of several references):
    1 - normalized Levenshtein distance, or ANLS with ``anls=True``. Empty output -> reward 0,
    ``parse_ok`` false. Raises :class:`GroundTruthError` only for empty ground truth."""
    truth = prepare_ocr(gt_text, anls=anls, anls_threshold=anls_threshold, ignore_case=ignore_case,
                        normalize_whitespace=normalize_whitespace)
    return score_ocr(text, truth)
