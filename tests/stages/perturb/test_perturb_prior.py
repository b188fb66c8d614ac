"""LeanPO's winning answers: the model answers with the ground truth in its prompt (origin prior_answer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from perturb_helpers import ScriptedSampler, policy_candidates, standard_tasks

from data_schemas import decode_image_cell
from pipeline.config import section_for_fingerprint
from pipeline.fingerprint import shard_fingerprint
from stages.base import ShardInputs, ShardOutput
from stages.perturb import PerturbConfig, run_shard
from stages.perturb.prior import prior_prompt
from stages.rank import RankConfig


def _run(config: PerturbConfig, sampler, tmp_path: Path):
    tasks = standard_tasks()
    inputs = ShardInputs({"tasks": tasks, "candidates": policy_candidates(tasks)}, resources=sampler)
    return tasks, run_shard(inputs, ShardOutput("perturb", 0, tmp_path / "scratch"), config)


def _config(**prior) -> PerturbConfig:
    return PerturbConfig.model_validate(
        {"model": "unused", "hallucination": {"n": 1}, "distortion": {"n_answers": 1}, "prior_answer": prior}
    )


def test_prior_answers_are_asked_with_the_ground_truth_in_the_prompt(tmp_path):
    sampler = ScriptedSampler(reply=lambda req, i: f"prior reply {i}")
    tasks, result = _run(_config(enabled=True, n=2), sampler, tmp_path)
    by_task = {t["task_id"]: t for t in tasks.to_pylist()}
    requests = {r.request_id: r for r in sampler.requests if ":prior_answer" in r.request_id}
    assert set(requests) == {f"{t}:prior_answer" for t in ("t-ground", "t-ocr", "t-vqa", "t-cap")}  # t-empty: no answer
    for request_id, request in requests.items():
        task = by_task[request_id.split(":")[0]]
        assert task["answer"] in request.prompt and task["prompt"] in request.prompt
        assert request.n == 2
        clean = np.asarray(decode_image_cell(task["image"]))
        assert np.array_equal(np.asarray(request.image), clean)  # the clean image, not a distorted one
    assert requests["t-vqa:prior_answer"].prompt == prior_prompt("How many dogs are there?", "2")
    rows = [r for r in result.tables["candidates"].to_pylist() if r["origin"] == "prior_answer"]
    assert sorted(r["cand_id"] for r in rows if r["task_id"] == "t-ocr") == ["t-ocr:prior_answer:0", "t-ocr:prior_answer:1"]
    record = json.loads(next(r for r in rows if r["task_id"] == "t-ocr")["distortion"])
    assert record == {"name": "prior_answer", "template": "prior_answer", "prior": "INVOICE 10583"}
    assert result.metrics["prior_answer_rows"] == 8 and result.metrics["prior_answer_skipped_empty_answer"] == 1


def test_prior_answers_alone_need_the_sampler_and_the_images():
    cfg = PerturbConfig.model_validate({"model": "m", "hallucination": {"enabled": False}, "distortion": {"enabled": False},
                                        "prior_answer": {"enabled": True}})
    assert cfg.needs_sampler()
    cfg.prior_answer.enabled = False
    assert not cfg.needs_sampler()


def test_the_option_off_changes_no_row(tmp_path):
    """Off (the default), the stage asks for and writes exactly what it did before the option existed."""
    off, on = ScriptedSampler(), ScriptedSampler()
    _, plain = _run(_config(), off, tmp_path / "a")
    _, with_prior = _run(_config(enabled=True), on, tmp_path / "b")
    rows = plain.tables["candidates"].to_pylist()
    assert not any(r["origin"] == "prior_answer" for r in rows)
    assert [r for r in with_prior.tables["candidates"].to_pylist() if r["origin"] != "prior_answer"] == rows
    assert [r.request_id for r in off.requests] == [r.request_id for r in on.requests if ":prior_answer" not in r.request_id]


def test_the_option_off_leaves_the_fingerprints_as_they_were():
    """Digests of the default perturb and rank sections computed on main (9163dfc) before prior_answer existed:
    a run made then stays current (no perturb or rank shard is redone by the upgrade). A change that alters
    either digest redoes every run's perturb (or rank) stage: update them only on purpose."""
    assert "prior_answer" not in section_for_fingerprint(PerturbConfig())
    assert shard_fingerprint("perturb", section_for_fingerprint(PerturbConfig()), ["in"]) == (
        "f47e6dd73cb0c0c9e12c94621aeb4c4eb6c6ce013121b66699fb4c5eb0a38284"
    )
    assert shard_fingerprint("rank", section_for_fingerprint(RankConfig()), ["in"]) == (
        "449a306b22e4a1cf49d24d067aa9f5ddbcaed82a9a0d244e977ddddd4b830f9a"
    )
    on = PerturbConfig(prior_answer={"enabled": True})
    assert section_for_fingerprint(on)["prior_answer"]["enabled"] is True  # on, it is part of the fingerprint
    origin_ranked = RankConfig(order_by="origin")
    assert section_for_fingerprint(origin_ranked)["order_by"] == "origin"
