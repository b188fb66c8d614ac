"""Shard fingerprints: what changes them (stage, settings, inputs, schema) and what does not (resources, key order)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline import fingerprint
from pipeline.config import RESOURCE_FIELDS, section_for_fingerprint
from pipeline.fingerprint import shard_fingerprint, table_hash
from stages import registry
from stages.vlm.engine_config import ENGINE_RESOURCE_FIELDS

SECTION = {"suffix": "!", "k": 2, "nested": {"a": 1, "b": [1, 2]}}
INPUTS = ["pairs:abc", "tasks:def"]


def test_same_inputs_same_fingerprint_and_key_order_does_not_matter():
    reordered = {"nested": {"b": [1, 2], "a": 1}, "k": 2, "suffix": "!"}
    assert shard_fingerprint("upper", SECTION, INPUTS) == shard_fingerprint("upper", reordered, list(INPUTS))
    assert len(shard_fingerprint("upper", SECTION, INPUTS)) == 64


@pytest.mark.parametrize(
    "stage, section, inputs",
    [
        ("other", SECTION, INPUTS),
        ("upper", {**SECTION, "suffix": "?"}, INPUTS),
        ("upper", {**SECTION, "nested": {"a": 1, "b": [2, 1]}}, INPUTS),
        ("upper", {**SECTION, "extra": None}, INPUTS),
        ("upper", SECTION, ["pairs:abc", "tasks:xyz"]),
        ("upper", SECTION, ["pairs:abc"]),
        ("upper", SECTION, list(reversed(INPUTS))),  # callers pass inputs in a fixed (sorted) order
    ],
    ids=["stage", "setting", "nested-list-order", "added-key", "input-hash", "fewer-inputs", "input-order"],
)
def test_any_change_of_what_a_shard_depends_on_changes_it(stage, section, inputs):
    assert shard_fingerprint(stage, section, inputs) != shard_fingerprint("upper", SECTION, INPUTS)


def test_schema_version_is_part_of_it(monkeypatch):
    before = shard_fingerprint("upper", SECTION, INPUTS)
    monkeypatch.setattr(fingerprint, "SCHEMA_VERSION", "0-other")
    assert shard_fingerprint("upper", SECTION, INPUTS) != before


def _resource_cases():
    """Every (stage, resource field) pair of the real registry: the fields a user tunes for speed only, at the
    section's top level (train) or in its ``engine`` table (the model stages)."""
    cases = []
    for spec in registry.stage_specs():
        for name in sorted(RESOURCE_FIELDS & set(spec.config_cls.model_fields)):
            cases.append(pytest.param(spec, name, False, id=f"{spec.name}.{name}"))
        if "engine" in spec.config_cls.model_fields:
            for name in sorted(ENGINE_RESOURCE_FIELDS):
                cases.append(pytest.param(spec, name, True, id=f"{spec.name}.engine.{name}"))
    return cases


def _bumped(value):
    return 0.5 if isinstance(value, float) and value == 0.9 else (value or 0) + 3


@pytest.mark.parametrize("spec, field_name, in_engine", _resource_cases())
def test_resource_fields_do_not_change_a_stages_fingerprint(spec, field_name, in_engine):
    base = spec.config_cls()
    if in_engine:
        engine = base.engine.model_copy(update={field_name: _bumped(getattr(base.engine, field_name))})
        changed = base.model_copy(update={"engine": engine})
    else:
        changed = base.model_copy(update={field_name: _bumped(getattr(base, field_name))})
    assert field_name not in section_for_fingerprint(base)
    assert shard_fingerprint(spec.name, section_for_fingerprint(changed), INPUTS) == shard_fingerprint(
        spec.name, section_for_fingerprint(base), INPUTS
    )


def test_resource_cases_cover_the_model_stages():
    stages = {case.values[0].name for case in _resource_cases() if case.values[2]}
    assert {"sample", "perturb", "reference", "eval"} <= stages


def test_a_real_setting_changes_a_stages_fingerprint():
    spec = registry.get_stage("sample")
    base = spec.config_cls.model_construct()
    changed = base.model_copy(update={"n": base.n + 1})
    assert shard_fingerprint("sample", section_for_fingerprint(changed), []) != shard_fingerprint(
        "sample", section_for_fingerprint(base), []
    )


def test_table_hash_follows_content_order_and_schema():
    table = pa.table({"record": ['{"i": 1}', '{"i": 2}'], "source": ["a", "b"]})
    assert table_hash(table) == table_hash(pa.table({"record": ['{"i": 1}', '{"i": 2}'], "source": ["a", "b"]}))
    assert table_hash(table) != table_hash(table.take([1, 0]))
    assert table_hash(table) != table_hash(table.set_column(1, "source", pa.array(["a", "c"])))
    assert table_hash(table) != table_hash(table.cast(pa.schema([("record", pa.large_string()), ("source", pa.string())])))
    assert table_hash(table.slice(0, 0)) != table_hash(table)


def test_model_is_fingerprinted_by_content_not_path_text(tiny_model_dir, tmp_path):
    """A trailing slash redoes nothing; a different model rebuilt into the same folder redoes the stage (issue 11, item 5)."""
    import shutil

    from stages.lib.models.tiny_vlm import build_tiny_vlm

    spec = registry.get_stage("sample")
    folder = shutil.copytree(tiny_model_dir, tmp_path / "vlm")

    def fp(model: str) -> str:
        return shard_fingerprint("sample", section_for_fingerprint(spec.config_cls(model=model)), INPUTS)

    before = fp(str(folder))
    assert fp(f"{folder}/") == before
    build_tiny_vlm(folder, seed=1)
    assert fp(str(folder)) != before
