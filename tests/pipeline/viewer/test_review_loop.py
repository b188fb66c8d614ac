"""The review loop from the command line: a bad review file is one line naming the line, exit 2, nothing
written; a changed review redoes rank and what follows, nothing before; `view` and `status` show the viewer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.store import RunStore
from tests.pipeline.test_cli import assert_one_line_error, cli
from tests.pipeline.viewer.test_viewer_writer import data


def _rank_files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "rank").rglob("*")) if p.is_file()}


def _run_rank(run: Path, review: Path, *stages: str):
    args = ["run", "--config", str(run / "config.toml"), "--run-dir", str(run), "--no-ray", "--no-progress",
            "--set", f'rank.review="{review}"', "--set", "run.export=false", "--set", "run.report=false"]
    return cli(*args, *(["--stages", ",".join(stages)] if stages else []))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"task_id": "%(id)s", "decision": "drop"', "line 2: not valid JSON"),
        ('{"task_id": "no-such-task"}', "line 2: task_id 'no-such-task' is not a task of this run"),
        ('{"task_id": "%(id)s", "order": ["%(cand)s", "%(id)s:made:up"]}', "line 2: order names '%(id)s:made:up', which task"),
    ],
)
def test_a_bad_review_line_is_one_line_exit_2_and_rank_writes_nothing(run_copy, tmp_path, line, message):
    first, rec = [r for r in data(run_copy / "viewer", "tasks/chunk-00000") if r["list"]][:2]
    values = {"id": rec["id"], "cand": rec["list"][0]["cand_id"]}
    review = tmp_path / "review.jsonl"
    review.write_text(json.dumps({"task_id": first["id"], "flags": ["wrong_reward"]}) + "\n" + line % values + "\n")
    before = _rank_files(run_copy)
    result = _run_rank(run_copy, review, "rank")
    assert_one_line_error(result, message % values)
    assert f"review file {review} line 2" in result.stderr
    assert _rank_files(run_copy) == before


def test_a_changed_review_redoes_rank_and_what_follows_nothing_before(run_copy, tmp_path):
    rec = next(r for r in data(run_copy / "viewer", "tasks/chunk-00000") if len(r["list"]) >= 2)
    review = tmp_path / "review.jsonl"
    review.write_text(json.dumps({"task_id": rec["id"], "decision": "keep", "flags": ["wrong_reward"]}) + "\n")
    first = _run_rank(run_copy, review)
    assert first.returncode == 0, first.stderr
    assert "rank       shards run 3, reused 0 of 3" in first.stderr  # the review is new to rank's fingerprint
    assert "score      shards run 0, reused 3 of 3" in first.stderr
    again = _run_rank(run_copy, review)
    assert "rank       shards run 0, reused 3 of 3" in again.stderr  # same content: nothing to redo
    review.write_text(json.dumps({"task_id": rec["id"], "decision": "drop"}) + "\n")
    changed = _run_rank(run_copy, review)
    assert changed.returncode == 0, changed.stderr
    for stage in ("ingest", "sample", "perturb", "score"):
        assert f"{stage:<10} shards run 0" in changed.stderr
    assert "rank       shards run 3, reused 0 of 3" in changed.stderr
    assert "reference  shards run 1, reused 2 of 3" in changed.stderr  # only the shard whose lists changed
    lists = RunStore(run_copy).read_table("reference", "listwise", "listwise", columns=["task_id"])
    assert rec["id"] not in lists["task_id"].to_pylist()
    assert "viewer: " in changed.stdout  # status names where the viewer is


def test_view_command_writes_the_viewer_and_prints_its_address(run_copy, tmp_path):
    result = cli("view", "--run-dir", str(run_copy), "--out", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"viewer: {(tmp_path / 'site' / 'index.html').resolve().as_uri()}"
    assert data(tmp_path / "site", "summary")["n_tasks"] == 9


def test_view_of_an_unranked_folder_is_an_error(tmp_path):
    assert_one_line_error(cli("view", "--run-dir", str(tmp_path)), "not a run folder")
