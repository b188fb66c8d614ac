"""Tests of the run report: stats.json fields, plots, empty input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from data_schemas.tables import empty_table, validate_table
from pipeline.report import LIST_SIZE_PLOT, REWARD_PLOT, compute_stats, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tasks_without_images() -> pa.Table:
    return pa.table({"task_id": ["t1", "t2", "t3"], "task_type": ["ocr", "ocr", "caption"], "prompt": ["p"] * 3})


_NULL_SCORED = ("n_tokens", "logprob_sum", "finish_reason", "model", "sample_index", "seed", "sampling", "distortion",
                "reward_kind", "detail")


def _scored() -> pa.Table:
    rows = [
        ("t1", "a", "policy", 1.0, True), ("t1", "b", "policy", 0.0, True), ("t1", "c", "hallucination", 0.5, False),
        ("t2", "d", "policy", 0.5, True), ("t2", "e", "policy", 0.5, True),
        ("t3", "f", "ground_truth", None, None), ("t3", "g", "policy", None, None),
    ]
    return validate_table(
        [
            {"task_id": t, "cand_id": c, "origin": o, "text": c, "reward": r, "parse_ok": ok} | dict.fromkeys(_NULL_SCORED)
            for t, c, o, r, ok in rows
        ],
        "scored",
    )


def _listwise() -> pa.Table:
    base = {"prompt": "p"} | dict.fromkeys(("cand_ids", "logprob_sums", "n_tokens", "ref_logps", "ref_n_tokens"))
    rows = [
        ("t1", "ocr", ["a", "c", "b"], [1.0, 0.5, 0.0], ["policy", "hallucination", "policy"]),
        ("t3", "caption", ["f", "g"], None, ["ground_truth", "policy"]),
    ]
    return validate_table(
        [base | {"task_id": t, "task_type": tt, "responses": x, "rewards": r, "origins": o} for t, tt, x, r, o in rows],
        "listwise",
    )


def _pairs() -> pa.Table:
    keys = ("task_id", "chosen", "rejected", "chosen_reward", "rejected_reward", "margin", "chosen_origin", "rejected_origin")
    rows = [
        ("t1", "a", "b", 1.0, 0.0, 1.0, "policy", "policy"),
        ("t3", "f", "g", None, None, None, "ground_truth", "policy"),
    ]
    return validate_table([{"prompt": "p", **dict(zip(keys, row))} for row in rows], "pairs")


def _quarantine() -> pa.Table:
    rows = [("ingest", "bad_image"), ("ingest", "bad_image"), ("score", "no_answer"), ("rank", "unknown_origin")]
    return validate_table(
        [{"stage": s, "shard": 0, "row_ref": "x", "reason": r, "message": None, "record": None} for s, r in rows],
        "quarantine",
    )


METRICS = {
    "rank": {"tasks_in": 3, "lists_out": 2, "dropped_single_reward": 1, "dropped_low_spread": 0, "pairs_out": np.int64(2)},
    "score": {"rows": 7},
}


def test_report_writes_stats_and_plots(tmp_path):
    tables = {"tasks": _tasks_without_images(), "scored": _scored(), "listwise": _listwise(), "pairs": _pairs(), "quarantine": _quarantine()}
    stats = write_report(tables, METRICS, tmp_path / "report")

    on_disk = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert on_disk == stats and on_disk["stage_metrics"]["rank"]["pairs_out"] == 2  # numpy scalars serialized
    assert stats["tasks"] == {"in": 3, "out": 2, "filtered": 1, "other": 0, "in_by_type": {"caption": 1, "ocr": 2}, "out_by_type": {"caption": 1, "ocr": 1}}
    assert stats["candidates"]["total"] == 7
    assert stats["candidates"]["by_origin"] == {"ground_truth": 1, "hallucination": 1, "policy": 5}
    assert stats["candidates"]["parse_ok_rate"] == pytest.approx(4 / 5)
    ocr_policy = stats["rewards"]["ocr"]["policy"]
    assert ocr_policy["n"] == 4 and ocr_policy["null"] == 0
    assert ocr_policy["mean"] == pytest.approx(0.5) and ocr_policy["std"] == pytest.approx(0.125 ** 0.5, abs=1e-6)  # population std, 6 decimals
    assert stats["rewards"]["caption"]["ground_truth"] == {"n": 0, "null": 1, "mean": None, "std": None}
    assert stats["lists"] == {"count": 2, "unscored": 1, "size_counts": {"2": 1, "3": 1}, "size_mean": 2.5}
    assert stats["pairs"]["count"] == 2 and stats["pairs"]["margin_mean"] == 1.0
    assert stats["pairs"]["by_origins"] == {"ground_truth>policy": 1, "policy>policy": 1}
    assert stats["filtered"] == {"rank": {"low_spread": 0, "single_reward": 1}}
    assert stats["quarantine"] == {"total": 4, "by_stage": {"ingest": {"bad_image": 2}, "rank": {"unknown_origin": 1}, "score": {"no_answer": 1}}}
    assert stats["groups"]["count"] == 0  # groups table absent: counted as empty
    for name in (REWARD_PLOT, LIST_SIZE_PLOT):
        data = (tmp_path / "report" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(["stats.json", REWARD_PLOT, LIST_SIZE_PLOT])


def test_report_on_empty_tables(tmp_path):
    tables = {name: empty_table(name) for name in ("tasks", "scored", "listwise", "pairs", "groups", "quarantine")}
    stats = write_report(tables, {}, tmp_path)
    assert stats["tasks"]["in"] == 0 and stats["lists"]["size_mean"] is None and stats["rewards"] == {}
    assert stats["pairs"]["margin_mean"] is None and stats["candidates"]["parse_ok_rate"] is None
    for name in (REWARD_PLOT, LIST_SIZE_PLOT):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)


def test_report_with_no_tables_at_all(tmp_path):
    assert compute_stats({}, {})["quarantine"] == {"total": 0, "by_stage": {}}
    write_report({}, {}, tmp_path / "nested" / "report")
    assert (tmp_path / "nested" / "report" / "stats.json").is_file()
