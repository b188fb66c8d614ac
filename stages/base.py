"""The contract between a stage and the runner.

A stage is a module that exposes a :class:`StageSpec`. Its ``run_shard(inputs, output, config)``
is pure with respect to the run store: it reads the input tables it is handed, returns its output
tables and quarantined rows in a :class:`ShardResult`, and never writes into the run folder itself
(the runner validates and commits the result atomically). It knows nothing about Ray.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, Sequence, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from data_schemas.quarantine import QuarantineReason

__all__ = [
    "StageConfig",
    "ShardInputs",
    "ShardOutput",
    "ShardResult",
    "StageSpec",
    "SourcePlan",
    "quarantine_row",
    "OMITTED",
]

OMITTED = "<omitted>"  # in StageConfig.fingerprint_before: the field leaves no trace in the fingerprint


class StageConfig(BaseModel):
    """Base of every stage's config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    enabled: bool = Field(True, description="Run this stage; a disabled stage is skipped and the next one reads from the stage before it.")

    # Fields added after runs existed, or whose default grew (a new origin in a default list): while such a
    # field holds its default, the fingerprint records what it recorded before the change (the value given
    # here, or nothing for OMITTED), so upgrading redoes no finished shard when the new option is off.
    fingerprint_before: ClassVar[dict[str, Any]] = {}


C = TypeVar("C", bound=StageConfig)


@dataclass
class ShardInputs:
    """What a shard reads: one Arrow table per declared input table, plus what the stage's ``setup`` loaded.

    ``resources`` is the value returned by :attr:`StageSpec.setup` (a loaded model, a sampler), made
    once per Ray actor and shared by every shard the actor runs; ``None`` for stages without setup.
    """

    tables: dict[str, pa.Table]
    resources: Any = None

    def table(self, name: str) -> pa.Table:
        """Return the input table ``name``; a stage asking for an undeclared table is a bug."""
        return self.tables[name]


@dataclass(frozen=True)
class ShardOutput:
    """Where a shard stands: its stage, its index, and a scratch folder it may write into.

    ``scratch_dir`` is for side artifacts (kept images, checkpoints); it is per-shard and survives
    the shard only if the stage returns paths inside it in :attr:`ShardResult.artifacts`.
    """

    stage: str
    index: int
    scratch_dir: Path


@dataclass
class ShardResult:
    """What a shard produced: output tables by name, quarantined rows, and counters for the report."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)


@dataclass
class SourcePlan:
    """A source stage's plan: one small records table per shard, and rows set aside while planning."""

    shards: list[pa.Table]
    quarantine: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StageSpec(Generic[C]):
    """A stage as the runner sees it.

    - ``reads``: table names it consumes, each taken from the nearest upstream stage that writes it.
    - ``writes``: table names it produces; the first is its main table (``<stage>/part-NNNNN.parquet``),
      the others go to ``<stage>/<table>/part-NNNNN.parquet``.
    - ``fan_in``: one shard over all input shards (training) instead of shard i -> shard i.
    - ``setup``: loads heavy resources once per worker (model stages run on an actor pool).
    - ``plan``: source stages only (``reads == ()``): splits the corpus into shards of input records.
    - ``uses_model``: the stage runs on an actor pool (``num_actors``, ``num_gpus``, ``num_cpus`` from its ``engine`` table, else the config itself).
    - ``resume_neutral``: config fields whose change redoes the shard but keeps its scratch folder, so
      the stage can resume from what it left there (train: ``max_steps`` continues from the checkpoints).
    - ``prepare``: runs in the driver before the shards are planned, ``prepare(config, read_input)`` ->
      ``(config for the shards, extra fingerprint fields)``, for files the config names whose content
      matters (rank: the review file). ``read_input(table, columns)`` reads a whole input table; it is
      ``None`` in the preflight before anything is written, when only the file itself can be checked.
    """

    name: str
    config_cls: type[C]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run_shard: Callable[[ShardInputs, ShardOutput, C], ShardResult]
    setup: Callable[[C], Any] | None = None
    plan: Callable[[C], "SourcePlan"] | None = None
    fan_in: bool = False
    uses_model: bool = False
    description: str = ""
    resume_neutral: frozenset[str] = frozenset()
    prepare: Callable[[C, Callable[[str, Sequence[str]], pa.Table] | None], tuple[C, dict[str, Any]]] | None = None


def quarantine_row(
    row_ref: str, reason: QuarantineReason, message: str = "", record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build one quarantine entry; the runner adds the stage and shard. ``record`` is JSON-encoded (bytes elided).

    ``reason`` comes from :class:`~data_schemas.quarantine.QuarantineReason` (README lists them all).
    """

    def _clean(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return f"<{len(value)} bytes>"
        if isinstance(value, dict):
            return {str(k): _clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_clean(v) for v in value]
        return value

    def _text(value: str) -> str:  # a lone surrogate must not make the quarantine row itself unwritable
        return value.encode("utf-8", "backslashreplace").decode("utf-8")

    return {
        "row_ref": _text(str(row_ref)),
        "reason": str(reason),
        "message": _text(message),
        "record": json.dumps(_clean(record), default=str) if record is not None else None,
    }
