"""Why an ingest row is quarantined: a fixed vocabulary, and the exception that carries it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason", "Rejected"]


class Reason(StrEnum):
    """Quarantine reasons of the ingest stage (the ``reason`` column of ``quarantine/ingest.parquet``)."""

    MISSING_IMAGE = "missing_image"  # the image file (or embedded bytes) does not exist
    EMPTY_IMAGE = "empty_image"  # zero bytes
    NOT_AN_IMAGE = "not_an_image"  # bytes no supported image decoder recognizes
    CORRUPT_IMAGE = "corrupt_image"  # recognized but fails to decode (truncated, damaged)
    IMAGE_TOO_LARGE = "image_too_large"  # over [ingest] max_pixels
    SIZE_MISMATCH = "size_mismatch"  # the annotation's declared size fits neither orientation of the image
    BAD_BOX = "bad_box"  # not 4 finite numbers, x2 <= x1 or y2 <= y1, or outside the image
    EMPTY_PROMPT = "empty_prompt"
    EMPTY_ANSWER = "empty_answer"  # no ground truth (answer, answers or boxes) for the task type
    BAD_CHOICES = "bad_choices"  # choices malformed, or the answer is not one of them
    UNKNOWN_TASK_TYPE = "unknown_task_type"
    MALFORMED_RECORD = "malformed_record"  # unreadable JSON line, wrong field types, dangling ids
    DUPLICATE = "duplicate"  # same image, prompt and task type as an earlier row (the first is kept)


class Rejected(Exception):
    """A row that cannot become a task; carries the quarantine reason and a human-readable message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
