"""The manifest's promises: it round-trips, older manifests still load, and "complete" means every planned shard."""

from __future__ import annotations

import json

from data_schemas import SCHEMA_VERSION
from pipeline.manifest import Manifest, ShardRecord


def _record(node: str = "") -> ShardRecord:
    return ShardRecord("fp", "hash", {"pairs": 3}, 1, ["upper/part-00000.parquet"], sizes={"upper/part-00000.parquet": 9},
                       inputs=["pairs:abc"], node=node)


def test_round_trip_keeps_every_field():
    manifest = Manifest(stage="upper", n_shards=2, shards={1: _record("a" * 56)})
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest and again.shards[1].node == "a" * 56 and again.schema_version == SCHEMA_VERSION


def test_json_is_deterministic_and_keyed_by_shard_index():
    a = Manifest(stage="upper", n_shards=3, shards={2: _record(), 0: _record()})
    b = Manifest(stage="upper", n_shards=3, shards={0: _record(), 2: _record()})
    assert a.to_json() == b.to_json()
    assert list(json.loads(a.to_json())["shards"]) == ["0", "2"]


def test_a_manifest_written_before_sizes_inputs_and_nodes_were_recorded_still_loads():
    old = {"stage": "upper", "schema_version": SCHEMA_VERSION, "n_shards": 1,
           "shards": {"0": {"fingerprint": "fp", "content_hash": "h", "rows": {"pairs": 1}, "quarantined": 0, "files": []}}}
    rec = Manifest.from_json(json.dumps(old)).shards[0]
    assert (rec.sizes, rec.inputs, rec.node) == ({}, [], "")


def test_complete_needs_a_plan_and_every_planned_shard():
    assert not Manifest(stage="s").complete  # never planned
    assert Manifest(stage="s", n_shards=0).complete  # planned, nothing to do
    assert not Manifest(stage="s", n_shards=2, shards={0: _record()}).complete
    assert Manifest(stage="s", n_shards=2, shards={0: _record(), 1: _record()}).complete
