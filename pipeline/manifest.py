"""What a run folder records about its shards: a stage's manifest, and a shard staged but not yet committed.

Plain data, serialised to ``<stage>/_manifest.json`` by :class:`pipeline.store.RunStore` (which
alone knows where files go).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from data_schemas import SCHEMA_VERSION

__all__ = ["ShardRecord", "Manifest", "StagedFile", "StagedShard"]


@dataclass
class ShardRecord:
    """What the manifest knows of one finished shard."""

    fingerprint: str
    content_hash: str
    rows: dict[str, int]
    quarantined: int
    files: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    completed_at: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each file, to notice a truncated one cheaply
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 of each file, checked where the file is read
    inputs: list[str] = field(default_factory=list)  # the input content hashes it was made from
    node: str = ""  # the Ray node that ran it ("" in-process)


@dataclass
class StagedFile:
    """One file of a shard written under a temporary name (paths relative to the run folder)."""

    path: str  # where it goes
    temp: str  # where it is now
    sha256: str
    size: int


@dataclass
class StagedShard:
    """A shard's tables and quarantine rows, written under temporary names and not yet recorded."""

    tables: dict[str, StagedFile] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    quarantine: StagedFile | None = None
    quarantined: int = 0


@dataclass
class Manifest:
    """A stage's ``_manifest.json``: the planned shard count and the finished shards by index."""

    stage: str
    schema_version: str = SCHEMA_VERSION
    n_shards: int | None = None  # None until the stage has been planned
    shards: dict[int, ShardRecord] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when the stage was planned and every planned shard is recorded."""
        return self.n_shards is not None and all(i in self.shards for i in range(self.n_shards))

    def to_json(self) -> str:
        payload = {
            "stage": self.stage,
            "schema_version": self.schema_version,
            "n_shards": self.n_shards,
            "shards": {str(i): asdict(rec) for i, rec in sorted(self.shards.items())},
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("shards", {}), dict):
            raise ValueError("a manifest is a JSON object with a 'shards' object")
        if not all(isinstance(rec, dict) for rec in raw.get("shards", {}).values()):
            raise ValueError("every shard record of a manifest is a JSON object")
        shards = {int(i): ShardRecord(**rec) for i, rec in raw.get("shards", {}).items()}
        return cls(
            stage=raw["stage"],
            schema_version=raw.get("schema_version", ""),
            n_shards=raw.get("n_shards"),
            shards=shards,
        )
