"""From tasks to ``candidates`` rows: the part of sampling other stages reuse.

- :func:`items_from_tasks` decodes a tasks table into :class:`SampleItem` (prompt + PIL image).
- :func:`sample_rows` asks a :class:`Sampler` for ``n`` responses per item and returns
  ``candidates`` rows plus quarantine rows for the requests the backend rejected. The perturb
  stage calls it with ``origin=Origin.DISTORTED_IMAGE`` and items whose images it distorted (``key``
  names the distortion, ``distortion`` is copied into the rows), or with ``origin=Origin.HALLUCINATION``
  and text-only items (``image=None``) to prompt an LLM.
- :func:`ground_truth_rows` turns each task's annotation into one ``ground_truth`` candidate.

Candidate ids are ``{task_id}:{origin}:{i}`` (``{task_id}:{origin}:{key}:{i}`` with a key);
seeds follow :mod:`stages.vlm.seeds`. Empty and truncated responses are kept with their
``finish_reason``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import pyarrow as pa

from data_schemas.images import decode_image_cell
from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import Origin
from stages.base import quarantine_row
from stages.lib.boxes import GENERIC_FORMATS, get_format, pixel_boxes_text
from stages.sample.config import SamplingSettings
from stages.vlm.requests import Sampler, SampleRequest
from stages.vlm.seeds import request_seed

__all__ = [
    "SampleItem",
    "items_from_tasks",
    "sample_rows",
    "ground_truth_rows",
    "ground_truth_text",
    "format_boxes",
    "cand_id",
]

@dataclass(frozen=True)
class SampleItem:
    """One thing to sample responses for: a task's prompt and image (``None`` for a text-only prompt).

    ``key`` tells apart several items of one task and origin (e.g. the distortion name); it enters
    the candidate id and the seed. ``distortion`` (a JSON string) is copied into every row.
    """

    task_id: str
    prompt: str
    image: Any | None
    key: str = ""
    distortion: str | None = None


def _request_id(task_id: str, origin: Origin, key: str = "") -> str:
    return f"{task_id}:{origin}:{key}" if key else f"{task_id}:{origin}"


def cand_id(task_id: str, origin: Origin, index: int, key: str = "") -> str:
    """Return the deterministic candidate id of response ``index`` for (task, origin, key)."""
    return f"{_request_id(task_id, origin, key)}:{index}"


def _rows(tasks: pa.Table | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return tasks.to_pylist() if isinstance(tasks, pa.Table) else list(tasks)


def _record(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task.get(k) for k in ("task_id", "task_type", "prompt", "source")}


def items_from_tasks(tasks: pa.Table | list[dict[str, Any]]) -> tuple[list[SampleItem], list[dict[str, Any]]]:
    """Return one :class:`SampleItem` per task whose image decodes, and quarantine rows for the others."""
    items, quarantine = [], []
    for task in _rows(tasks):
        try:
            image = decode_image_cell(task["image"])
        except Exception as exc:  # PIL raises many types for a corrupt file; any of them means "bad image"
            quarantine.append(
                quarantine_row(task["task_id"], QuarantineReason.CORRUPT_IMAGE, f"{type(exc).__name__}: {exc}", _record(task))
            )
            continue
        items.append(SampleItem(task_id=task["task_id"], prompt=task["prompt"], image=image))
    return items, quarantine


def sample_rows(
    sampler: Sampler,
    items: Iterable[SampleItem],
    settings: SamplingSettings,
    *,
    origin: Origin = Origin.POLICY,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sample ``settings.n`` responses per item; return ``(candidate rows, quarantine rows)``.

    Rows follow the ``candidates`` schema, in item order then sample order. A request the backend
    rejected yields one quarantine row (reason: the backend's ``error_reason``) and no
    candidates. Same items, settings and model -> same rows, whatever the batching.
    """
    items = list(items)
    requests = [
        SampleRequest(
            request_id=_request_id(item.task_id, origin, item.key),
            prompt=item.prompt,
            image=item.image,
            n=settings.n,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            seed=request_seed(settings.seed, item.task_id, origin, item.key),
        )
        for item in items
    ]
    sampling = json.dumps(
        {
            "backend": sampler.backend,
            "max_tokens": settings.max_tokens,
            "n": settings.n,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        },
        sort_keys=True,
    )
    rows, quarantine = [], []
    for item, request, result in zip(items, requests, sampler.sample(requests), strict=True):
        if result.error is not None:
            reason = result.error_reason or QuarantineReason.GENERATION_FAILED
            record = {"task_id": item.task_id, "prompt": item.prompt, "origin": origin, "key": item.key}
            quarantine.append(quarantine_row(item.task_id, reason, result.error, record))
            continue
        for i, out in enumerate(result.outputs):
            rows.append(
                {
                    "task_id": item.task_id,
                    "cand_id": cand_id(item.task_id, origin, i, item.key),
                    "origin": origin,
                    "text": out.text,
                    "n_tokens": out.n_tokens,
                    "logprob_sum": out.logprob_sum,
                    "finish_reason": out.finish_reason,
                    "model": sampler.model_name,
                    "sample_index": i,
                    "seed": request.seed,
                    "sampling": sampling,
                    "distortion": item.distortion,
                    "token_ids": None if out.token_ids is None else list(out.token_ids),
                }
            )
    return rows, quarantine


def format_boxes(boxes: list[list[float]]) -> str:
    """Render xyxy pixel boxes as ingest writes a grounding answer (:func:`stages.lib.boxes.pixel_boxes_text`):
    ``[x1, y1, x2, y2]``, several joined by ``", "``, so that the text scores IoU 1.0 against ``boxes``."""
    return pixel_boxes_text(boxes)


def ground_truth_text(task: dict[str, Any], box_format: str = "pixel") -> str | None:
    """Return the annotation as a response: for a grounding task written in a family's
    ``box_format`` (the policy's coordinate language), its boxes in that format; else ``answer``;
    else the boxes as pixel text; else the most common of ``answers``."""
    if box_format not in GENERIC_FORMATS and task.get("task_type") == "grounding" and task.get("boxes"):
        spec = get_format(box_format)
        if spec.write is not None:
            return spec.write(task["boxes"], task["width"], task["height"])
    if task.get("answer"):
        return task["answer"]
    if task.get("boxes"):
        return format_boxes(task["boxes"])
    if task.get("answers"):
        return Counter(task["answers"]).most_common(1)[0][0]
    return None


def ground_truth_rows(tasks: pa.Table | list[dict[str, Any]], box_format: str = "pixel") -> list[dict[str, Any]]:
    """Return one ``ground_truth`` candidate per task that has an annotation (tasks without one get
    none), grounding boxes written in ``box_format`` (:func:`ground_truth_text`)."""
    rows = []
    for task in _rows(tasks):
        text = ground_truth_text(task, box_format)
        if text is None:
            continue
        rows.append(
            {
                "task_id": task["task_id"],
                "cand_id": cand_id(task["task_id"], Origin.GROUND_TRUTH, 0),
                "origin": Origin.GROUND_TRUTH,
                "text": text,
                "n_tokens": None,
                "logprob_sum": None,
                "finish_reason": "annotation",
                "model": None,
                "sample_index": 0,
                "seed": None,
                "sampling": None,
                "distortion": None,
            }
        )
    return rows
