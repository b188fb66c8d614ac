"""Policy samples take the sampler's log-probs in the reference stage: the same numbers as scoring them again."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from stages.reference.stage import reuses_sampled_logprobs

_STAGES = ["ingest", "sample", "perturb", "score", "rank", "reference"]


def _settings(model_dir, *extra: str) -> list[str]:
    return [
        "run.progress=false", "run.export=false", "run.report=false", "run.viewer=false",
        "ingest.n_tasks=6", "ingest.shard_size=3", f'sample.engine.model="{model_dir}"',
        "sample.n=3", "sample.max_tokens=6", "perturb.max_tokens=6", "perturb.distortion.n_answers=1",
        'perturb.distortion.distortions=[{ name = "diffusion", label = "diffusion" }]', "train.enabled=false",
        *extra,
    ]


def _reference(run_dir):
    store = RunStore(run_dir)
    table = store.read_table("reference", "listwise", "listwise").sort_by("task_id").to_pylist()
    metrics = [r.metrics for r in store.read_manifest("reference").shards.values()]
    return table, {k: sum(m.get(k, 0.0) for m in metrics) for k in ("scored_tokens", "reused_responses", "responses")}


def test_reused_and_rescored_log_probs_agree_and_only_the_others_are_scored(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_pipeline(load_config(None, _settings(tiny_model_dir)), run_dir, stages=_STAGES, use_ray=False)
    reused, reused_counts = _reference(run_dir)
    summaries = run_pipeline(load_config(None, _settings(tiny_model_dir, "reference.reuse_sampled_logprobs=false")),
                             run_dir, stages=_STAGES, use_ray=False)
    assert {s.stage: s.shards_run for s in summaries}["sample"] == 0  # only the reference stage is redone
    rescored, rescored_counts = _reference(run_dir)

    n_policy = sum(o == "policy" for row in reused for o in row["origins"])
    assert n_policy > 0 and reused_counts["reused_responses"] == n_policy
    assert rescored_counts["reused_responses"] == 0
    assert 0 < reused_counts["scored_tokens"] < rescored_counts["scored_tokens"]
    assert [r["task_id"] for r in reused] == [r["task_id"] for r in rescored]
    for a, b in zip(reused, rescored):
        assert a["ref_n_tokens"] == b["ref_n_tokens"]
        assert a["ref_logps"] == pytest.approx(b["ref_logps"], abs=1e-4)
        policy = [k for k, o in enumerate(a["origins"]) if o == "policy"]
        assert [a["ref_logps"][k] for k in policy] == [a["logprob_sums"][k] for k in policy]


@pytest.mark.parametrize(
    "extra, reuses",
    [
        ((), True),
        (("sample.top_p=0.9",), False),  # a truncated distribution: the stored number is not what is sampled from
        (("sample.temperature=0.7",), False),
        (('reference.engine.dtype="bfloat16"',), False),  # another engine than the sampler's
        (("reference.reuse_sampled_logprobs=false",), False),
    ],
)
def test_reuse_needs_the_sampling_engine_at_temperature_1_and_top_p_1(tiny_model_dir, extra, reuses):
    assert reuses_sampled_logprobs(load_config(None, _settings(tiny_model_dir, *extra)).reference) is reuses
