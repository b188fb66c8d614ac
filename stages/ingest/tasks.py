"""One task's ground truth: parsed from loose input, checked per task type, turned into a ``tasks`` row.

Checks run twice: at plan time without the image (types, prompt, answers, box shape) so bad rows never
reach a shard, and again in the shard with the decoded image size (box bounds, EXIF frame).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from data_schemas.images import encode_image_cell
from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import TASK_TYPES
from stages.ingest.decode import StoredImage
from stages.ingest.rejected import Rejected
from stages.lib.boxes import BOX_DECIMALS, BadBox, BoxLayout, boxes_from_annotation, check_pixel_box, orient_box, pixel_boxes_text
from stages.ingest.split import parse_split

__all__ = [
    "TaskSpec",
    "parse_task",
    "annotation_boxes",
    "check_task",
    "fit_to_image",
    "task_id",
    "dedupe_prompt",
    "task_row",
    "check_utf8",
]

_LETTER = re.compile(r"\(?([A-Za-z])[.):]?")


@dataclass(frozen=True)
class TaskSpec:
    """A task before its image is decoded. ``declared_size`` is the (width, height) the annotation claims, if any."""

    task_type: str
    prompt: str
    answer: str | None = None
    boxes: list[list[float]] | None = None
    answers: list[str] | None = None
    choices: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    declared_size: tuple[int, int] | None = None
    split: str | None = None  # "train" | "eval" when the corpus row names one (stages.ingest.split)

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-able dict (the ``task`` part of a plan record)."""
        keys = ("task_type", "prompt", "answer", "boxes", "answers", "choices", "meta", "split")
        out = {k: getattr(self, k) for k in keys}
        out["declared_size"] = list(self.declared_size) if self.declared_size else None
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TaskSpec:
        """Inverse of :meth:`to_record`."""
        size = record.get("declared_size")
        return cls(**{**record, "declared_size": tuple(size) if size else None})


def check_utf8(value: Any, what: str) -> None:
    """Raise ``Rejected(malformed_record)`` if a string in ``value`` (nested dicts and lists, keys included)
    cannot be encoded as UTF-8: a lone surrogate such as ``"\ud800"`` is a legal JSON escape but no text,
    and would fail later when the row is hashed or written."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end]
            message = f"{what} is not valid UTF-8 text: lone surrogate {bad!r} at position {exc.start}"
            raise Rejected(QuarantineReason.MALFORMED_RECORD, message) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_utf8(key, f"a key of {what}")
            check_utf8(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_utf8(item, what)


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"{name} must be text, got {type(value).__name__}: {value!r:.80}")
    text = str(value).strip()
    return text or None


def _text_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"{name} must be a list, got {type(value).__name__}: {value!r:.80}")
    # VQAv2-style answer objects {"answer": ..., "answer_confidence": ...} are accepted as their text.
    items = [_text(v.get("answer") if isinstance(v, Mapping) else v, name) for v in value]
    return items


def annotation_boxes(value: Any, layout: BoxLayout) -> list[list[float]] | None:
    """Return ``value`` (one flat box or a list of boxes, ``layout`` pixels) as xyxy float boxes, or raise
    ``Rejected(bad_box)`` for anything that is not 4 numbers per box. Bounds are checked later."""
    try:
        return boxes_from_annotation(value, layout)
    except BadBox as exc:
        raise Rejected(QuarantineReason.BAD_BOX, str(exc)) from None


def _meta(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise Rejected(QuarantineReason.MALFORMED_RECORD, f"meta is not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"meta must be a JSON object, got {type(value).__name__}")
    return dict(value)


def parse_task(
    fields: Mapping[str, Any], *, default_task_type: str | None = None, box_layout: BoxLayout = BoxLayout.XYXY
) -> TaskSpec:
    """Build a checked :class:`TaskSpec` from loosely typed fields (a JSONL line, a Parquet row) keyed by the
    canonical names task_type, prompt, answer, boxes, answers, choices, meta. Raises :class:`Rejected`."""
    task_type = fields.get("task_type")
    if task_type is None or task_type == "":
        if default_task_type is None:
            raise Rejected(QuarantineReason.UNKNOWN_TASK_TYPE, "row has no task_type and [ingest] default_task_type is unset")
        task_type = default_task_type
    if not isinstance(task_type, str) or task_type not in TASK_TYPES:
        raise Rejected(QuarantineReason.UNKNOWN_TASK_TYPE, f"unknown task_type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    spec = TaskSpec(
        task_type=task_type,
        prompt=_text(fields.get("prompt"), "prompt") or "",
        answer=_text(fields.get("answer"), "answer"),
        boxes=annotation_boxes(fields.get("boxes"), box_layout) or None,
        answers=_text_list(fields.get("answers"), "answers") or None,
        choices=_text_list(fields.get("choices"), "choices") or None,
        meta=_meta(fields.get("meta")),
        split=parse_split(fields.get("split")),
    )
    return check_task(spec)


def _check_box(box: list[float], size: tuple[int, int] | None, tolerance: float) -> list[float]:
    try:
        return check_pixel_box(box, size, tolerance)
    except BadBox as exc:
        raise Rejected(QuarantineReason.BAD_BOX, str(exc)) from None


def _choice_letter(answer: str, choices: list[str]) -> str:
    letters = string.ascii_uppercase[: len(choices)]
    match = _LETTER.fullmatch(answer)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    folded = [c.casefold() for c in choices]
    if answer.casefold() in folded:
        return letters[folded.index(answer.casefold())]
    raise Rejected(
        QuarantineReason.BAD_CHOICES, f"answer {answer!r} is neither a letter {letters[0]}-{letters[-1]} nor one of the choices"
    )


def _check_choices(spec: TaskSpec) -> TaskSpec:
    choices = spec.choices
    if spec.task_type != "vqa":
        raise Rejected(QuarantineReason.BAD_CHOICES, f"choices are only used by vqa tasks, not {spec.task_type}")
    if len(choices) < 2 or len(choices) > 26 or any(c is None for c in choices):
        raise Rejected(QuarantineReason.BAD_CHOICES, f"choices must be 2-26 non-empty texts, got {choices!r:.120}")
    letter = _choice_letter(spec.answer, choices)
    return replace(spec, answer=letter, answers=[letter])


def check_task(spec: TaskSpec, size: tuple[int, int] | None = None, tolerance: float = 1.0) -> TaskSpec:
    """Return ``spec`` normalized for its task type, or raise :class:`Rejected`.

    grounding needs boxes; ocr an answer; vqa and caption an answer or answers (the answer defaults to the
    most common of them, answers to ``[answer]``); vqa choices turn the answer into its letter. With
    ``size`` (upright width, height) boxes must lie inside the image (``tolerance`` px) and are clipped to it.
    Text that is not valid UTF-8 (lone surrogates) is ``malformed_record``.
    """
    for name in ("prompt", "answer", "answers", "choices", "meta"):
        check_utf8(getattr(spec, name), name)
    if spec.task_type not in TASK_TYPES:
        known = ", ".join(TASK_TYPES)
        raise Rejected(QuarantineReason.UNKNOWN_TASK_TYPE, f"unknown task_type {spec.task_type!r}; known: {known}")
    if not spec.prompt or not spec.prompt.strip():
        raise Rejected(QuarantineReason.EMPTY_PROMPT, "prompt is empty")
    boxes = [_check_box(b, size, tolerance) for b in spec.boxes] if spec.boxes else None
    answers = [a for a in spec.answers if a] if spec.answers else None
    answer = spec.answer
    if spec.task_type == "grounding":
        if not boxes:
            raise Rejected(QuarantineReason.EMPTY_ANSWER, "grounding task has no boxes")
    elif spec.task_type == "ocr":
        answer = answer or (answers[0] if answers else None)
        if not answer:
            raise Rejected(QuarantineReason.EMPTY_ANSWER, "ocr task has no answer text")
    else:
        if not answer and answers:
            answer = Counter(answers).most_common(1)[0][0]
        if not answer:
            raise Rejected(QuarantineReason.EMPTY_ANSWER, f"{spec.task_type} task has neither answer nor answers")
    if answer and not answers and spec.task_type != "grounding":
        answers = [answer]
    spec = replace(spec, prompt=spec.prompt.strip(), boxes=boxes, answer=answer, answers=answers)
    return _check_choices(spec) if spec.choices is not None else spec


def fit_to_image(spec: TaskSpec, image: StoredImage, tolerance: float) -> TaskSpec:
    """Put ``spec``'s boxes in the frame of the stored (upright) image and check them against its size.

    Boxes are taken as drawn on the upright image, except when the annotation declares the file's raw
    size and that differs from the upright size (a COCO file listing 4000x3000 for a portrait photo):
    then they were drawn on the raw pixels and are rotated with the image. A declared size matching
    neither is ``size_mismatch``. Grounding answers become the boxes as text.
    """
    upright = (image.width, image.height)
    meta = dict(spec.meta)
    boxes = spec.boxes
    if boxes and spec.declared_size is not None:
        declared = tuple(spec.declared_size)
        if declared != upright and declared != image.raw_size:
            raise Rejected(
                QuarantineReason.SIZE_MISMATCH,
                f"annotation declares a {declared[0]}x{declared[1]} image, the file is {upright[0]}x{upright[1]}",
            )
        if image.orientation != 1 and declared == image.raw_size and declared != upright:
            boxes = [orient_box(b, image.orientation, image.raw_size) for b in boxes]
            meta["ingest"] = {**meta.get("ingest", {}), "boxes_rotated_by_exif": image.orientation}
    if boxes:
        # Stored boxes and their text must agree exactly, so that the ground truth scores IoU 1.0.
        boxes = [[round(v, BOX_DECIMALS) for v in box] for box in boxes]
    spec = check_task(replace(spec, boxes=boxes, meta=meta), size=upright, tolerance=tolerance)
    if spec.task_type == "grounding":
        spec = replace(spec, answer=pixel_boxes_text(spec.boxes))
    return spec


def task_id(image_sha256: str, task_type: str, prompt: str) -> str:
    """Stable content hash of a task: 16 hex digits of sha256(image sha256, task type, prompt)."""
    return hashlib.sha256(f"{image_sha256}\x1f{task_type}\x1f{prompt}".encode()).hexdigest()[:16]


def dedupe_prompt(prompt: str) -> str:
    """The prompt as compared for duplicates: whitespace collapsed, case folded."""
    return " ".join(prompt.split()).casefold()


def task_row(spec: TaskSpec, image: StoredImage, source: str) -> dict[str, Any]:
    """Return one ``tasks`` row (a dict matching ``data_schemas.TASKS``); ``split`` is the corpus's, or None."""
    meta = dict(spec.meta)
    if image.reencoded:
        meta["ingest"] = {
            **meta.get("ingest", {}),
            "source_format": image.source_format,
            "exif_orientation": image.orientation,
        }
    return {
        "task_id": task_id(image.sha256, spec.task_type, spec.prompt),
        "task_type": spec.task_type,
        "image": encode_image_cell(image.data, image.path),
        "image_sha256": image.sha256,
        "width": image.width,
        "height": image.height,
        "prompt": spec.prompt,
        "answer": spec.answer,
        "boxes": spec.boxes,
        "answers": spec.answers,
        "choices": spec.choices,
        "source": source,
        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
        "split": spec.split,
    }
