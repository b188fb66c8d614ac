"""The review file: parsing, checking against a run, and how rank applies it (drop, person's order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stages.lib.errors import ConfigError
from stages.rank import SPEC, RankConfig, ReviewDecision, ReviewFlag, check_review, parse_review, prepare, read_review
from tests.stages.rank.test_rank_stage import _run, _scored, _tasks


def _lines(*entries: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in entries)


def test_parse_reads_entries_with_defaults_and_skips_blank_lines():
    review = parse_review(_lines({"task_id": "a"}, {"task_id": "b", "decision": "drop", "flags": ["bad_ground_truth"]}) + "\n")
    assert review.entries["a"].decision is ReviewDecision.KEEP and review.entries["a"].order is None
    assert review.entries["b"].flags == (ReviewFlag.BAD_GROUND_TRUTH,)
    assert review.lines == {"a": 1, "b": 2}
    assert len(review.sha256) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"task_id": "a"}\n{"task_id": "b",\n', "line 2: not valid JSON"),
        ('["a"]\n', "line 1: expected a JSON object, got list"),
        ('{"task_id": "a", "verdict": "drop"}\n', "line 1: verdict: unknown key; keys are task_id, decision"),
        ('{"task_id": "a", "decision": "maybe"}\n', "line 1: decision: Input should be 'keep' or 'drop'"),
        ('{"task_id": "a", "flags": ["ugly"]}\n', "line 1: flags.0: Input should be 'bad_ground_truth' or 'wrong_reward'"),
        ('{"task_id": "a", "order": ["x"]}\n', "line 1: order: order names 1 response(s)"),
        ('{"task_id": "a", "order": ["x", "x"]}\n', "line 1: order: order names 'x' more than once"),
        ('{"decision": "drop"}\n', "line 1: task_id: Field required"),
        ('{"task_id": "a"}\n\n{"task_id": "a"}\n', "line 3: task_id 'a' is reviewed twice (first at line 1)"),
    ],
)
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ConfigError) as info:
        parse_review(text, "r.jsonl")
    assert str(info.value).startswith("review file r.jsonl line ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_read_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="review file .* not found"):
        read_review(tmp_path / "absent.jsonl")


def test_check_names_the_line_of_an_unknown_task_or_response():
    review = parse_review(_lines({"task_id": "a", "order": ["a:1", "a:2"]}, {"task_id": "zz"}), "r.jsonl")
    with pytest.raises(ConfigError, match=r"line 2: task_id 'zz' is not a task of this run"):
        check_review(review, ["a"], {"a": {"a:1", "a:2"}})
    review = parse_review(_lines({"task_id": "a", "order": ["a:1", "a:9"]}), "r.jsonl")
    with pytest.raises(ConfigError, match=r"line 1: order names 'a:9', which task 'a''s list does not have"):
        check_review(review, ["a"], {"a": {"a:1", "a:2"}})
    check_review(parse_review(_lines({"task_id": "a", "order": ["a:2", "a:1"]})), ["a"], {"a": {"a:1", "a:2"}})


TASKS = [("t1", "vqa"), ("t2", "vqa"), ("t3", "caption")]
SCORED = [
    ("t1", "t1:a", "ground_truth", "alpha", 1.0),
    ("t1", "t1:b", "policy", "beta", 0.5),
    ("t1", "t1:c", "hallucination", "gamma", 0.0),
    ("t2", "t2:a", "ground_truth", "one", 1.0),
    ("t2", "t2:b", "policy", "two", 0.0),
    ("t3", "t3:a", "ground_truth", "a cat", None),
    ("t3", "t3:b", "hallucination", "a dog", None),
]


def _reviewed(tmp_path: Path, *entries: dict, **config):
    path = tmp_path / "review.jsonl"
    path.write_text(_lines(*entries))
    return _run(_tasks(TASKS), _scored(SCORED), review=path, **config)


def test_without_review_rank_is_unchanged(tmp_path):
    result = _run(_tasks(TASKS), _scored(SCORED))
    assert result.tables["listwise"]["cand_ids"].to_pylist()[0] == ["t1:a", "t1:b", "t1:c"]
    assert result.metrics["dropped_review"] == 0 and result.metrics["review_reordered"] == 0


def test_dropped_list_leaves_every_output(tmp_path):
    result = _reviewed(tmp_path, {"task_id": "t2", "decision": "drop", "flags": ["bad_ground_truth"]})
    for table in ("listwise", "pairs", "groups"):
        assert "t2" not in result.tables[table]["task_id"].to_pylist()
    assert result.metrics["dropped_review"] == 1 and result.metrics["review_bad_ground_truth"] == 1
    assert result.metrics["lists_out"] + sum(v for k, v in result.metrics.items() if k.startswith("dropped_")) == 3


def test_reordered_list_keeps_the_persons_order_and_pairs_follow_it(tmp_path):
    result = _reviewed(
        tmp_path, {"task_id": "t1", "order": ["t1:b", "t1:a", "t1:c"], "flags": ["wrong_reward"]}, pairs_mode="all_pairs"
    )
    row = result.tables["listwise"].to_pylist()[0]
    assert row["cand_ids"] == ["t1:b", "t1:a", "t1:c"]
    assert row["responses"] == ["beta", "alpha", "gamma"]
    assert row["rewards"] == [1.0, 0.5, 0.0]  # the list's rewards, given out by the person's positions
    pairs = [(p["chosen"], p["rejected"]) for p in result.tables["pairs"].to_pylist() if p["task_id"] == "t1"]
    assert pairs == [("beta", "alpha"), ("beta", "gamma"), ("alpha", "gamma")]
    assert result.metrics["review_reordered"] == 1 and result.metrics["review_wrong_reward"] == 1


def test_an_order_overrides_the_filters_and_orders_unscored_lists(tmp_path):
    # min_spread 1.0 would drop t1 (spread 1.0 is kept) -- use t2 with spread 1.0 and a partial order of t1
    result = _reviewed(
        tmp_path,
        {"task_id": "t1", "order": ["t1:c", "t1:b"]},
        {"task_id": "t3", "order": ["t3:b", "t3:a"]},
        min_spread=1.0,
    )
    rows = {r["task_id"]: r for r in result.tables["listwise"].to_pylist()}
    assert rows["t1"]["cand_ids"] == ["t1:c", "t1:b"]  # spread 0.5 < min_spread, kept: the person ordered it
    assert rows["t3"]["cand_ids"] == ["t3:b", "t3:a"] and rows["t3"]["rewards"] is None
    pairs = {p["task_id"]: (p["chosen"], p["rejected"]) for p in result.tables["pairs"].to_pylist()}
    assert pairs["t3"] == ("a dog", "a cat")  # by position, against the origin order
    groups = {g["task_id"]: (g["chosen"], g["rejected"]) for g in result.tables["groups"].to_pylist()}
    assert groups["t3"] == (["a dog"], ["a cat"])


def test_prepare_hashes_the_content_and_checks_against_the_run(tmp_path):
    path = tmp_path / "review.jsonl"
    path.write_text(_lines({"task_id": "t1", "decision": "drop"}))
    config = RankConfig(review=path)
    tables = {"tasks": _tasks(TASKS), "scored": _scored(SCORED)}

    def read_input(name, columns):
        return tables[name].select(list(columns))

    prepared, extra = prepare(config, read_input)
    assert prepared.loaded_review().entries["t1"].decision is ReviewDecision.DROP
    first = extra["review"]
    path.write_text(_lines({"task_id": "t1", "decision": "keep"}))
    assert prepare(config, read_input)[1]["review"] != first  # re-read: the content is what counts
    path.write_text(_lines({"task_id": "t9"}))
    prepare(config, None)  # the preflight checks only the file
    with pytest.raises(ConfigError, match="line 1: task_id 't9' is not a task of this run"):
        prepare(config, read_input)
    assert prepare(RankConfig(), read_input) == (RankConfig(), {})
    assert SPEC.prepare is prepare
