"""Listwise rows joined with their task images: what the reference stage scores and the trainer trains on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from data_schemas.images import decode_image_cell
from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import Origin
from stages.base import quarantine_row

__all__ = ["ListExample", "load_lists", "image_cells"]


@dataclass
class ListExample:
    """One listwise row: a prompt, its image cell (decoded on demand) and its responses with rewards.

    ``rewards[i]`` is None when the response has no reward (it is then left out of every pair);
    ``ref_logps`` is None when the reference stage has not filled it.
    """

    task_id: str
    prompt: str
    image_cell: dict[str, Any] | None
    responses: list[str]
    rewards: list[float | None]
    origins: list[str]
    ref_logps: list[float] | None = None
    ref_n_tokens: list[int] | None = None
    ref_povid_logps: list[float] | None = None
    response_token_ids: list[list[int] | None] | None = None  # sampled ids per response (None: we wrote it)
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    def image(self):
        """The task image as an RGB ``PIL.Image`` (None for a text-only task)."""
        return None if self.image_cell is None else decode_image_cell(self.image_cell)


def image_cells(tasks: pa.Table) -> dict[str, dict[str, Any]]:
    """Map task_id to its image cell (``{bytes, path}``) without decoding anything."""
    ids = tasks.column("task_id").to_pylist()
    cells = tasks.column("image").to_pylist()
    return dict(zip(ids, cells))


def _clean_reward(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def load_lists(tasks: pa.Table, listwise: pa.Table) -> tuple[list[ListExample], list[dict[str, Any]]]:
    """Join ``listwise`` rows with their task's image; return the examples and quarantine entries.

    A row whose task is missing from ``tasks``, whose image cannot be decoded, or whose per-response
    columns disagree in length is quarantined (never silently dropped).
    """
    cells = image_cells(tasks)
    examples: list[ListExample] = []
    quarantine: list[dict[str, Any]] = []
    for row in listwise.to_pylist():
        task_id = row["task_id"]
        if task_id not in cells:
            quarantine.append(quarantine_row(task_id, QuarantineReason.UNKNOWN_TASK, "listwise row has no task in the tasks table", row))
            continue
        responses = list(row["responses"])
        n = len(responses)
        rewards = [_clean_reward(r) for r in (row.get("rewards") or [None] * n)]
        origins = list(row.get("origins") or [Origin.POLICY.value] * n)
        ref = row.get("ref_logps")
        ref_n = row.get("ref_n_tokens")
        ref_povid = row.get("ref_povid_logps")
        if ref is not None and any(x is None for x in ref):
            ref = ref_n = None  # partly filled: treat as not computed
        if ref_povid is not None and any(x is None for x in ref_povid):
            ref_povid = None
        token_ids = row.get("response_token_ids")
        lengths = {"rewards": len(rewards), "origins": len(origins)}
        if token_ids is not None:
            lengths["response_token_ids"] = len(token_ids)
        if ref is not None:
            lengths["ref_logps"] = len(ref)
        if ref_povid is not None:
            lengths["ref_povid_logps"] = len(ref_povid)
        if any(v != n for v in lengths.values()):
            message = f"{n} responses but list lengths {lengths}"
            quarantine.append(quarantine_row(task_id, QuarantineReason.RAGGED_LIST, message, row))
            continue
        cell = cells[task_id]
        if cell is not None:
            try:
                decode_image_cell(cell)
            except Exception as exc:  # any decoder failure means this row cannot be used
                quarantine.append(quarantine_row(task_id, QuarantineReason.CORRUPT_IMAGE, f"{type(exc).__name__}: {exc}", row))
                continue
        examples.append(
            ListExample(
                task_id=task_id,
                prompt=row["prompt"],
                image_cell=cell,
                responses=responses,
                rewards=rewards,
                origins=origins,
                ref_logps=None if ref is None else [float(x) for x in ref],
                ref_n_tokens=None if ref_n is None else [int(x) for x in ref_n],
                ref_povid_logps=None if ref_povid is None else [float(x) for x in ref_povid],
                response_token_ids=None if token_ids is None else [None if t is None else list(t) for t in token_ids],
                row=row,
            )
        )
    return examples, quarantine
