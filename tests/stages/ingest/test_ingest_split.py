"""The held-out split: deterministic from the task id, a corpus's own split column first, eval tasks in their own table."""

from __future__ import annotations

import pytest

from data_schemas.quarantine import QuarantineReason
from stages.ingest import IngestConfig
from stages.ingest.rejected import Rejected
from stages.ingest.split import EVAL, SPLIT_ALIASES, TRAIN, assign_split, hash_fraction, parse_split


@pytest.mark.parametrize("value", sorted(SPLIT_ALIASES))
def test_every_alias_names_train_or_eval(value):
    assert parse_split(value) == SPLIT_ALIASES[value] and parse_split(f" {value.upper()} ") in (TRAIN, EVAL)


def test_a_missing_split_is_none_and_a_bad_one_is_rejected():
    assert parse_split(None) is None and parse_split("  ") is None
    with pytest.raises(Rejected, match="split 'holdout' is not one of") as info:
        parse_split("holdout")
    assert info.value.reason is QuarantineReason.MALFORMED_RECORD
    with pytest.raises(Rejected):
        parse_split(3)


def test_the_fraction_is_a_fixed_function_of_the_task_id():
    ids = [f"{i:016x}" for i in range(2000)]
    fractions = [hash_fraction(t) for t in ids]
    assert fractions == [hash_fraction(t) for t in ids] and all(0 <= f < 1 for f in fractions)
    held = sum(assign_split(t, None, 0.25) == EVAL for t in ids) / len(ids)
    assert 0.2 < held < 0.3
    assert {assign_split(t, None, 0.0) for t in ids} == {TRAIN}
    assert assign_split(ids[0], TRAIN, 0.99) == TRAIN and assign_split(ids[0], EVAL, 0.0) == EVAL  # the corpus wins


def test_ingest_routes_held_out_tasks_to_their_own_table(run_ingest):
    run = run_ingest(IngestConfig(n_tasks=40, shard_size=7, eval_fraction=0.3))
    train, held = run.tasks.to_pylist(), run.eval_tasks.to_pylist()
    assert len(train) + len(held) == 40 and 0 < len(held) < 40
    assert {r["split"] for r in train} == {TRAIN} and {r["split"] for r in held} == {EVAL}
    assert all(assign_split(r["task_id"], None, 0.3) == EVAL for r in held)
    again = run_ingest(IngestConfig(n_tasks=40, shard_size=40, eval_fraction=0.3))  # other sharding, same split
    assert sorted(again.eval_tasks.column("task_id").to_pylist()) == sorted(r["task_id"] for r in held)


def test_a_jsonl_split_column_overrides_the_fraction(tmp_path, image_bytes, write_jsonl, run_ingest):
    lines = []
    for i, split in enumerate(["train", "validation", None, "test", "oops"]):
        (tmp_path / f"{i}.png").write_bytes(image_bytes(color=(i * 40, 0, 0)))
        line = {"image": f"{i}.png", "task_type": "vqa", "prompt": "Colour?", "answer": "red"}
        if split is not None:
            line["part"] = split
        lines.append(line)
    config = IngestConfig(format="jsonl", path=write_jsonl(tmp_path / "m.jsonl", lines), split_column="part")
    run = run_ingest(config)
    assert run.eval_tasks.num_rows == 2 and run.tasks.num_rows == 2  # the row without a split: fraction 0 -> train
    assert list(run.reasons().values()) == [QuarantineReason.MALFORMED_RECORD]


def test_a_negative_or_full_fraction_is_a_config_error():
    with pytest.raises(ValueError, match="eval_fraction"):
        IngestConfig(eval_fraction=-0.1)
    with pytest.raises(ValueError, match="eval_fraction"):
        IngestConfig(eval_fraction=1.0)
