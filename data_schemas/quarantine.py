"""Why a row is quarantined: the one vocabulary of the ``reason`` column of every quarantine table.

Every stage takes its reasons from :class:`QuarantineReason`; :data:`QUARANTINE_REASONS` says which
stages write each one and what it means, and :func:`quarantine_reasons_markdown` renders it as the
table README's bad-input section embeds (a test keeps that section current).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["QuarantineReason", "ReasonInfo", "QUARANTINE_REASONS", "quarantine_reasons_markdown"]


class QuarantineReason(StrEnum):
    """The ``reason`` of a quarantine row (``quarantine/<stage>.parquet``)."""

    # --- the corpus row (ingest)
    MALFORMED_RECORD = "malformed_record"
    UNKNOWN_TASK_TYPE = "unknown_task_type"
    EMPTY_PROMPT = "empty_prompt"
    EMPTY_ANSWER = "empty_answer"
    BAD_CHOICES = "bad_choices"
    BAD_BOX = "bad_box"
    DUPLICATE = "duplicate"
    # --- the image
    MISSING_IMAGE = "missing_image"
    OUTSIDE_ROOT = "outside_root"
    EMPTY_IMAGE = "empty_image"
    NOT_AN_IMAGE = "not_an_image"
    CORRUPT_IMAGE = "corrupt_image"
    IMAGE_TOO_LARGE = "image_too_large"
    SIZE_MISMATCH = "size_mismatch"
    # --- the model (sample, perturb)
    IMAGE_REJECTED = "image_rejected"
    PROMPT_TOO_LONG = "prompt_too_long"
    OOM = "oom"
    GENERATION_FAILED = "generation_failed"
    DISTORTION_FAILED = "distortion_failed"
    # --- joins between tables
    UNKNOWN_TASK = "unknown_task"
    DUPLICATE_TASK = "duplicate_task"
    UNKNOWN_ORIGIN = "unknown_origin"
    BAD_GROUND_TRUTH = "bad_ground_truth"
    REWARD_FAILED = "reward_failed"
    INVALID_REWARD = "invalid_reward"
    MISSING_REWARD = "missing_reward"
    RAGGED_LIST = "ragged_list"
    SCORING_FAILED = "scoring_failed"


@dataclass(frozen=True)
class ReasonInfo:
    """Which stages write a reason, and what it means (one line)."""

    stages: tuple[str, ...]
    description: str


_R = QuarantineReason

QUARANTINE_REASONS: Final[dict[QuarantineReason, ReasonInfo]] = {
    _R.MALFORMED_RECORD: ReasonInfo(
        ("ingest",), "The corpus row cannot be read: invalid JSON or UTF-8, a field of the wrong type, an id that "
        "points nowhere (COCO image or category)."
    ),
    _R.UNKNOWN_TASK_TYPE: ReasonInfo(
        ("ingest", "score"), "The task type is none of grounding, ocr, vqa, caption (or has no reward in `[score]`); "
        "ingest: no task type and `[ingest] default_task_type` unset."
    ),
    _R.EMPTY_PROMPT: ReasonInfo(("ingest",), "The prompt (or the RefCOCO sentence) is empty."),
    _R.EMPTY_ANSWER: ReasonInfo(
        ("ingest",), "No ground truth for the task type: no boxes (grounding), no text (ocr), no answer (vqa, caption)."
    ),
    _R.BAD_CHOICES: ReasonInfo(
        ("ingest",), "Multiple-choice options are malformed (not 2-26 texts, not a vqa task) or the answer is none of them."
    ),
    _R.BAD_BOX: ReasonInfo(
        ("ingest",), "A box is not 4 finite numbers, is empty or inverted, or lies outside the image beyond "
        "`[ingest] box_tolerance`."
    ),
    _R.DUPLICATE: ReasonInfo(("ingest",), "Same image, task type and prompt as an earlier row (the first is kept)."),
    _R.MISSING_IMAGE: ReasonInfo(
        ("ingest",), "The image file (or the embedded bytes) does not exist or cannot be read."
    ),
    _R.OUTSIDE_ROOT: ReasonInfo(
        ("ingest",), "The image path (symlinks resolved) lies outside the corpus root (`[ingest] image_root`, else "
        "the corpus folder); `[ingest] allow_outside_root = true` reads it."
    ),
    _R.EMPTY_IMAGE: ReasonInfo(("ingest",), "The image has 0 bytes."),
    _R.NOT_AN_IMAGE: ReasonInfo(
        ("ingest",), "No accepted decoder (JPEG, PNG, WEBP, GIF, BMP, TIFF) recognises the bytes."
    ),
    _R.CORRUPT_IMAGE: ReasonInfo(
        ("ingest", "sample", "perturb", "reference", "train", "eval"),
        "The image is recognised but does not decode (truncated, damaged); after ingest: the stored image no "
        "longer decodes.",
    ),
    _R.IMAGE_TOO_LARGE: ReasonInfo(
        ("ingest",), "Width x height is over `[ingest] max_pixels` (read from the header, before decoding)."
    ),
    _R.SIZE_MISMATCH: ReasonInfo(
        ("ingest",), "The annotation declares an image size that fits neither orientation of the file."
    ),
    _R.IMAGE_REJECTED: ReasonInfo(("sample", "perturb", "eval"), "The model's processor refused the image or the prompt."),
    _R.PROMPT_TOO_LONG: ReasonInfo(
        ("sample", "perturb", "eval"), "The encoded prompt (image tokens included) plus `max_tokens` is longer than the "
        "model's context; checked before generating."
    ),
    _R.OOM: ReasonInfo(("sample", "perturb", "eval"), "Out of memory (GPU or CPU allocator) even with a batch of one request."),
    _R.GENERATION_FAILED: ReasonInfo(("sample", "perturb", "eval"), "The engine failed on this request for another reason."),
    _R.DISTORTION_FAILED: ReasonInfo(
        ("perturb",), "An image distortion failed on this image (e.g. OpenCV's JPEG encoder refuses a side over "
        "65,500 px); the task's other candidates are kept."
    ),
    _R.UNKNOWN_TASK: ReasonInfo(
        ("score", "rank", "reference", "train"), "The row names a task_id that is not in the shard's tasks."
    ),
    _R.DUPLICATE_TASK: ReasonInfo(("rank",), "A task_id appears twice in the shard's tasks (the first is ranked)."),
    _R.UNKNOWN_ORIGIN: ReasonInfo(
        ("rank",), "The candidate's origin is none of policy, distorted_image, hallucination, ground_truth."
    ),
    _R.BAD_GROUND_TRUTH: ReasonInfo(
        ("score", "eval"), "The task's ground truth cannot be scored against (grounding without boxes, empty OCR text, a "
        "multiple-choice answer that is none of the choices)."
    ),
    _R.REWARD_FAILED: ReasonInfo(
        ("score",), "The reward function raised on this output (the other candidates of the task are scored)."
    ),
    _R.INVALID_REWARD: ReasonInfo(("rank",), "The reward is not a finite number."),
    _R.MISSING_REWARD: ReasonInfo(("rank",), "The reward is null while other candidates of its task have one."),
    _R.RAGGED_LIST: ReasonInfo(
        ("reference", "train"), "A ranked list's per-response columns (rewards, origins, ref_logps) differ in length."
    ),
    _R.SCORING_FAILED: ReasonInfo(
        ("reference",), "The reference engine refused a response of the list (image rejected, longer than the context)."
    ),
}


def quarantine_reasons_markdown() -> str:
    """Return the Markdown table of every quarantine reason: name, the stages that write it, its meaning."""
    lines = ["| reason | stages | meaning |", "|---|---|---|"]
    for reason, info in QUARANTINE_REASONS.items():
        description = info.description.replace("|", "\\|")
        lines.append(f"| `{reason.value}` | {', '.join(info.stages)} | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m data_schemas.quarantine: the table README embeds
    print(quarantine_reasons_markdown())
