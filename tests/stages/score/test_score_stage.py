"""The score stage on small hand-built tasks + candidates tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from data_schemas.tables import SCORED, validate_table
from stages.base import ShardInputs, ShardOutput
from stages.lib.rewards import RewardKind
from stages.score import SPEC, ScoreConfig, run_shard
from tests.factories import task_row


def task(task_id: str, task_type: str, **gt) -> dict:
    return task_row(task_id, task_type, image=b"not an image: the stage must never decode it", width=200, height=100, **gt)


def cand(task_id: str, cand_id: str, text: str) -> dict:
    return {"task_id": task_id, "cand_id": cand_id, "origin": "policy", "text": text, "n_tokens": 3,
            "logprob_sum": -1.5, "finish_reason": "stop", "model": "tiny", "sample_index": 0, "seed": 7,
            "sampling": '{"temperature": 1.0}', "distortion": None}


TASKS = [
    task("g1", "grounding", boxes=[[20.0, 10.0, 120.0, 60.0]], answer="[20, 10, 120, 60]"),
    task("o1", "ocr", answer="HELLO WORLD"),
    task("v1", "vqa", answers=["2", "2", "two", "3"], answer="2"),
    task("m1", "vqa", answer="B", choices=["cat", "dog"]),
    task("c1", "caption", answer="A dog on a sofa."),
    task("bad", "grounding", boxes=[]),
]
CANDS = [
    cand("g1", "g1-0", "[20, 10, 120, 60]"),
    cand("g1", "g1-1", '{"bbox_2d": [0.1, 0.1, 0.6, 0.6]}'),
    cand("g1", "g1-2", "I cannot see it."),
    cand("o1", "o1-0", "HELLO WORLD"),
    cand("o1", "o1-1", "hello world"),
    cand("v1", "v1-0", "Two."),
    cand("v1", "v1-1", ""),
    cand("m1", "m1-0", "(B)"),
    cand("c1", "c1-0", "A dog."),
    cand("ghost", "ghost-0", "[1, 2, 3, 4]"),
    cand("bad", "bad-0", "[1, 2, 3, 4]"),
]


def run(config: ScoreConfig | None = None, tasks=TASKS, cands=CANDS, tmp_path: Path = Path("/nonexistent")):
    inputs = ShardInputs(tables={"tasks": validate_table(tasks, "tasks"), "candidates": validate_table(cands, "candidates")})
    output = ShardOutput(stage="score", index=0, scratch_dir=tmp_path / "scratch")
    return run_shard(inputs, output, config or ScoreConfig())


@pytest.fixture(scope="module")
def result():
    return run()


@pytest.fixture(scope="module")
def rows(result):
    return {r["cand_id"]: r for r in result.tables["scored"].to_pylist()}


def test_spec():
    assert SPEC.name == "score" and SPEC.reads == ("tasks", "candidates") and SPEC.writes == ("scored",)
    assert SPEC.config_cls is ScoreConfig and SPEC.run_shard is run_shard and SPEC.description


def test_scored_table_keeps_candidate_columns(result, rows):
    table = result.tables["scored"]
    assert table.schema.equals(SCORED)
    assert rows["g1-0"]["logprob_sum"] == -1.5 and rows["g1-0"]["sampling"] == '{"temperature": 1.0}'
    assert set(rows) == {c["cand_id"] for c in CANDS} - {"ghost-0", "bad-0"}


@pytest.mark.parametrize(
    ("cand_id", "kind", "reward", "parse_ok"),
    [
        ("g1-0", "iou", 1.0, True),
        ("g1-1", "iou", 1.0, True),  # 0-1 coordinates on the 200 x 100 image: exactly the ground truth
        ("g1-2", "iou", 0.0, False),
        ("o1-0", "ocr", 1.0, True),
        ("o1-1", "ocr", 1 - 10 / 11, True),  # case-sensitive by default: 10 letters differ
        ("v1-0", "vqa", 1.0, True),
        ("v1-1", "vqa", 0.0, False),
        ("m1-0", "vqa", 1.0, True),
    ],
)
def test_rewards(rows, cand_id, kind, reward, parse_ok):
    row = rows[cand_id]
    assert row["reward_kind"] == kind and row["parse_ok"] is parse_ok
    assert row["reward"] == pytest.approx(reward)
    detail = json.loads(row["detail"])
    assert ("reason" in detail) is (not parse_ok)


def test_caption_has_null_reward(rows):
    row = rows["c1-0"]
    assert row["reward"] is None and row["reward_kind"] == "none" and row["parse_ok"] is None
    assert json.loads(row["detail"]) == {"reason": "no discriminative reward for task type caption"}


def test_quarantine(result):
    by_ref = {q["row_ref"]: q for q in result.quarantine}
    assert set(by_ref) == {"ghost-0", "bad-0"}
    assert by_ref["ghost-0"]["reason"] == "unknown_task" and "'ghost'" in by_ref["ghost-0"]["message"]
    assert json.loads(by_ref["ghost-0"]["record"])["text"] == "[1, 2, 3, 4]"
    assert by_ref["bad-0"]["reason"] == "bad_ground_truth" and "no ground-truth boxes" in by_ref["bad-0"]["message"]
    validate_table([q | {"stage": "score", "shard": 0} for q in result.quarantine], "quarantine")


def test_metrics(result):
    m = result.metrics
    assert m["rows"] == 9 and m["quarantined"] == 2 and m["none.rows"] == 1
    assert m["iou.rows"] == 3 and m["iou.parse_failures"] == 1
    assert m["vqa.rows"] == 3 and m["vqa.reward_sum"] == pytest.approx(2)


def test_metrics_add_up_over_shards():
    """The runner sums each metric over a stage's shards: two half shards must sum to the whole shard's metrics."""
    whole = run().metrics
    halves = [run(cands=CANDS[0::2]).metrics, run(cands=CANDS[1::2]).metrics]  # each kind split over both
    summed = {k: sum(h.get(k, 0.0) for h in halves) for k in set(halves[0]) | set(halves[1])}
    assert summed == pytest.approx(whole)


def test_overrides_change_the_reward_kind():
    config = ScoreConfig(reward_kinds={"ocr": RewardKind.ANLS, "caption": "ocr"})
    rows = {r["cand_id"]: r for r in run(config).tables["scored"].to_pylist()}
    assert rows["o1-1"]["reward_kind"] == "anls" and rows["o1-1"]["reward"] == 1.0  # ANLS folds case
    assert rows["c1-0"]["reward_kind"] == "ocr" and 0.0 < rows["c1-0"]["reward"] < 1.0


def test_box_format_and_ocr_case_settings():
    config = ScoreConfig(box_format="pixel", ocr_ignore_case=True)
    rows = {r["cand_id"]: r for r in run(config).tables["scored"].to_pylist()}
    assert rows["g1-1"]["parse_ok"] and rows["g1-1"]["reward"] < 1e-3  # read as a 0.5 x 0.5 pixel box
    assert json.loads(rows["g1-1"]["detail"])["format"] == "pixel"
    assert rows["o1-1"]["reward"] == 1.0


def test_unknown_task_type_is_quarantined():
    tasks = [task("x1", "detection", boxes=[[0.0, 0.0, 1.0, 1.0]])]
    result = run(tasks=tasks, cands=[cand("x1", "x1-0", "[0, 0, 1, 1]")])
    assert result.tables["scored"].num_rows == 0
    assert result.quarantine[0]["reason"] == "unknown_task_type" and "'detection'" in result.quarantine[0]["message"]


def test_empty_shard():
    result = run(cands=[])
    assert result.tables["scored"].num_rows == 0 and result.tables["scored"].schema.equals(SCORED)
    assert result.quarantine == [] and result.metrics["rows"] == 0


def test_tasks_table_may_carry_only_the_ground_truth_columns():
    tasks = validate_table(TASKS, "tasks").drop_columns(["image", "prompt", "meta"])
    inputs = ShardInputs(tables={"tasks": tasks, "candidates": validate_table(CANDS, "candidates")})
    result = run_shard(inputs, ShardOutput("score", 0, Path("/x/s")), ScoreConfig())
    assert result.tables["scored"].num_rows == 9


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"reward_kinds": {"detect": "iou"}}, r"score.reward_kinds has unknown task type\(s\) \['detect'\]"),
        ({"reward_kinds": {"ocr": "bleu"}}, "Input should be 'iou', 'ocr', 'anls', 'vqa' or 'none'"),
        ({"box_format": "xywh"}, "Input should be 'auto', 'pixel', 'norm1' or 'norm1000'"),
        ({"anls_threshold": 2.0}, "less than or equal to 1"),
        ({"vqa_soft_accuracy": "max"}, "Input should be 'min3' or 'leave_one_out'"),
        ({"rewards": {}}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(overrides, match):
    with pytest.raises(ValidationError, match=match):
        ScoreConfig(**overrides)


def test_every_config_field_is_documented():
    for name, field in ScoreConfig.model_fields.items():
        if name != "enabled":
            assert field.description, name


def test_a_reward_that_fails_on_one_output_quarantines_only_that_candidate(monkeypatch):
    """Per-row failures become quarantine rows, the shard goes on (issue 11, item 1)."""
    from dataclasses import replace

    from stages.lib.rewards import REWARDS

    spec = REWARDS[RewardKind.OCR]

    def fragile(texts, truths, options):
        if any("BOOM" in t for t in texts):
            raise RecursionError("maximum recursion depth exceeded")
        return spec.score_batch(texts, truths, options)

    monkeypatch.setitem(REWARDS, RewardKind.OCR, replace(spec, score_batch=fragile))
    cands = [cand("o1", "ok-0", "HELLO WORLD"), cand("o1", "bad-0", "BOOM"), cand("v1", "v-0", "2")]
    result = run(cands=cands)
    [bad] = result.quarantine
    assert (bad["row_ref"], bad["reason"]) == ("bad-0", "reward_failed") and "RecursionError" in bad["message"]
    scored = {r["cand_id"]: r["reward"] for r in result.tables["scored"].to_pylist()}
    assert scored == {"ok-0": 1.0, "v-0": 1.0}
    assert result.metrics["rows"] == 2 and result.metrics["quarantined"] == 1
