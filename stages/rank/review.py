"""A person's review of ranked lists (``review.jsonl``, downloaded from the viewer), read, checked and applied.

One JSON object per line::

    {"task_id": "…", "decision": "keep" | "drop", "flags": ["bad_ground_truth", "wrong_reward"],
     "order": ["cand_id best", "cand_id next", …] | null, "note": "…"}

Only ``task_id`` is required. What rank does with an entry:

- ``decision = "drop"``: the task yields no list (counted as ``dropped_review``), so no pairs or groups.
- ``order``: the list is exactly these responses in this order, whatever the filters (spread, dedupe,
  cap) would have done. The rewards of the list are its own rewards sorted best first and given out
  by position, so pairs, groups and training (which select by reward) follow the person's order;
  each response's own reward stays in the ``scored`` table. Unscored (caption) lists are paired by
  position. This reassignment is our choice (no published method reviews lists by hand); it keeps
  every output consistent with the person's order without inventing new reward values.
- ``decision = "keep"`` without an order: rank's own list, unchanged.
- ``flags`` are recorded (counted as ``review_<flag>``) and change nothing by themselves; the viewer
  proposes "drop" for a list flagged ``bad_ground_truth``.

Errors name the file and line and are :class:`ConfigError` (one line, exit code 2): a line that is not a
JSON object, an unknown key or value, a repeated task id, an order that repeats a response or has fewer
than two; against the run (:func:`check_review`): a task id that is not a task of the run, an order that
names a response the task's list does not have.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stages.lib.errors import ConfigError

__all__ = ["ReviewDecision", "ReviewFlag", "ReviewEntry", "Review", "parse_review", "read_review", "check_review"]


class ReviewDecision(StrEnum):
    """What the person decided about a list."""

    KEEP = "keep"
    DROP = "drop"


class ReviewFlag(StrEnum):
    """What the person noticed about a list (recorded, counted in rank's metrics)."""

    BAD_GROUND_TRUTH = "bad_ground_truth"
    WRONG_REWARD = "wrong_reward"


class ReviewEntry(BaseModel):
    """One line of ``review.jsonl``: a person's verdict on one task's list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(min_length=1, description="The task whose list is reviewed.")
    decision: ReviewDecision = Field(ReviewDecision.KEEP, description="keep or drop the list.")
    flags: tuple[ReviewFlag, ...] = Field((), description="What is wrong with it: bad_ground_truth, wrong_reward.")
    order: tuple[str, ...] | None = Field(None, description="cand_ids best first: the person's order of the list.")
    note: str = Field("", description="Free text, kept for the person's records.")

    @field_validator("order")
    @classmethod
    def _order_is_a_list(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        if len(value) < 2:
            raise ValueError(f"order names {len(value)} response(s); a list needs at least two (or leave order out)")
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"order names {repeated[0]!r} more than once")
        return value


@dataclass(frozen=True)
class Review:
    """A parsed review file: entries by task id, the line each came from, and the file's content hash."""

    source: str
    sha256: str
    entries: dict[str, ReviewEntry] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _line_error(source: str, number: int, exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "line"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key; keys are {', '.join(ReviewEntry.model_fields)}"
    return ConfigError(f"review file {source} line {number}: {where}: {message}")


def parse_review(text: str, source: str = "review.jsonl") -> Review:
    """Parse review lines (blank lines are skipped); raise :class:`ConfigError` naming the first bad line."""
    entries: dict[str, ReviewEntry] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"review file {source} line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"review file {source} line {number}: expected a JSON object, got {type(raw).__name__}")
        try:
            entry = ReviewEntry.model_validate(raw)
        except ValidationError as exc:
            raise _line_error(source, number, exc) from None
        if entry.task_id in entries:
            raise ConfigError(
                f"review file {source} line {number}: task_id {entry.task_id!r} is reviewed twice "
                f"(first at line {lines[entry.task_id]}); keep one line per task"
            )
        entries[entry.task_id] = entry
        lines[entry.task_id] = number
    return Review(source=source, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), entries=entries, lines=lines)


def read_review(path: Path) -> Review:
    """Read and parse the review file at ``path``; a missing or unreadable file is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"[rank] review: review file {path} not found; download it from the viewer or unset [rank] review")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[rank] review: cannot read {path}: {exc}") from None
    return parse_review(text, str(path))


def check_review(review: Review, task_ids: Iterable[str], cand_ids: Mapping[str, set[str]]) -> None:
    """Raise :class:`ConfigError` naming the line of the first entry that does not fit the run: an unknown
    task id, or an order naming a response that is not among the task's scored candidates (``cand_ids``)."""
    known = set(task_ids)
    for task_id, entry in sorted(review.entries.items(), key=lambda kv: review.lines[kv[0]]):
        where = f"review file {review.source} line {review.lines[task_id]}"
        if task_id not in known:
            raise ConfigError(f"{where}: task_id {task_id!r} is not a task of this run")
        if entry.order is not None:
            have = cand_ids.get(task_id, set())
            missing = [c for c in entry.order if c not in have]
            if missing:
                raise ConfigError(
                    f"{where}: order names {missing[0]!r}, which task {task_id!r}'s list does not have "
                    f"({len(have)} response(s): {', '.join(sorted(have)[:4])}{', …' if len(have) > 4 else ''})"
                )
