"""Per-task-type metrics from eval rows: per task first, then the mean over tasks with bootstrap intervals."""

from __future__ import annotations

import json

import pytest

from stages.eval.metrics import METRICS, bootstrap_means, format_table, markdown_table, per_task_values, summarize


def _row(role, task_id, decoding, reward, task_type="vqa", index=0, parse_ok=True, metrics=None):
    return {
        "model_role": role, "model": f"m-{role}", "task_id": task_id, "task_type": task_type, "decoding": decoding,
        "sample_index": index, "text": "x", "n_tokens": 1, "reward": reward, "reward_kind": "vqa",
        "parse_ok": parse_ok, "metrics": json.dumps(metrics if metrics is not None else {"accuracy": reward}),
    }


def _rows():
    rows = []
    for i, (start, trained) in enumerate([(0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0)]):
        tid = f"t{i}"
        rows += [_row("start", tid, "greedy", start), _row("trained", tid, "greedy", trained)]
        rows += [_row("start", tid, "sample", r, index=k) for k, r in enumerate([0.0, 1.0])]
        rows += [_row("trained", tid, "sample", r, index=k) for k, r in enumerate([1.0, 1.0])]
    return rows


def test_per_task_values_cover_greedy_and_sampled_metrics():
    values = per_task_values(_rows())
    vqa = values["start"]["vqa"]
    assert vqa["reward"] == {"t0": 0.0, "t1": 0.0, "t2": 1.0, "t3": 0.0}
    assert vqa["sample_reward"]["t0"] == 0.5 and vqa["best_of_n"]["t0"] == 1.0 and vqa["reward_spread"]["t0"] == 0.5
    assert values["trained"]["vqa"]["reward_spread"]["t0"] == 0.0 and vqa["parse_rate"]["t1"] == 1.0


def test_summary_means_intervals_and_paired_change():
    summary = summarize(_rows(), {"start": "a", "trained": "b"}, samples=500, seed=1)
    reward = summary["metrics"]["vqa"]["reward"]
    assert reward["start"]["mean"] == 0.25 and reward["trained"]["mean"] == 0.75 and reward["change"]["mean"] == 0.5
    for stat in reward.values():
        assert stat["low"] <= stat["mean"] <= stat["high"]
    assert reward["change"]["low"] >= 0.0  # every task's change is 0 or +1
    assert summary["tasks"] == {"vqa": 4}
    assert set(summary["metrics"]["vqa"]) <= {m.key for m in METRICS} and "iou_at_0.5" not in summary["metrics"]["vqa"]


def test_bootstrap_is_seeded_and_shares_the_resampled_tasks():
    a = bootstrap_means({"x": [0.0, 1.0, 0.5, 0.2], "y": [0.0, 1.0, 0.5, 0.2]}, 300, 0.9, seed=3)
    b = bootstrap_means({"x": [0.0, 1.0, 0.5, 0.2], "y": [0.0, 1.0, 0.5, 0.2]}, 300, 0.9, seed=3)
    assert a == b and a["x"] == a["y"]


def test_a_model_without_greedy_answers_takes_accuracy_from_the_samples():
    rows = [_row("trained", "t0", "sample", r, index=k) for k, r in enumerate([1.0, 0.0, 0.0, 1.0])]
    summary = summarize(rows, {"trained": "b"}, samples=100)
    table = summary["metrics"]["vqa"]
    assert "reward" not in table and table["accuracy"]["trained"]["mean"] == 0.5 and "change" not in table["accuracy"]


def test_rows_without_a_reward_are_left_out():
    rows = [_row("trained", "c0", "greedy", None, task_type="caption"), *_rows()]
    assert "caption" not in summarize(rows, {"start": "a", "trained": "b"}, samples=100)["metrics"]


@pytest.mark.parametrize("render", [format_table, markdown_table])
def test_tables_show_every_role_and_metric(render):
    text = render(summarize(_rows(), {"start": "a", "trained": "b"}, samples=100, settings={"n": 2}))
    assert "0.250 [" in text and "+0.500 [" in text and "2 samples" in text
    assert "accuracy" in text and "best-of-n" in text and "vqa (4)" in text
