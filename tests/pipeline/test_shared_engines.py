"""One engine per model across stages: sample, perturb and reference load the policy once per run."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.executor import RayExecutor
from pipeline.runner import run_pipeline
from stages.vlm import shared

# train and eval off: they load models of their own (the trained one); the three stages share the policy
_STAGES = ["ingest", "sample", "perturb", "score", "rank", "reference"]


def _settings(model_dir, share: bool) -> list[str]:
    return [
        "run.progress=false",
        "run.export=false",
        "run.report=false",
        "run.viewer=false",
        f"run.share_engines={'true' if share else 'false'}",
        "ingest.n_tasks=6",
        "ingest.shard_size=3",
        f'sample.engine.model="{model_dir}"',
        "sample.n=2",
        "sample.max_tokens=6",
        "perturb.max_tokens=6",
        "perturb.distortion.n_answers=1",
        'perturb.distortion.distortions=[{ name = "diffusion", label = "diffusion" }]',
        "train.enabled=false",
    ]


def _tables(run_dir) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.glob("*/part-*.parquet"))}


def test_in_process_run_loads_the_policy_once_and_matches_per_stage_loading(tiny_model_dir, tmp_path):
    results = {}
    for share in (True, False):
        shared.reset_load_counts()
        run_pipeline(load_config(None, _settings(tiny_model_dir, share)), tmp_path / str(share), stages=_STAGES,
                     use_ray=False)
        results[share] = (sum(shared.load_counts().values()), _tables(tmp_path / str(share)))
    assert results[True][0] == 1  # sample, perturb (distorted-image answers) and reference: one load
    assert results[False][0] == 3  # one per model stage
    assert results[True][1] == results[False][1]  # the same bytes in every table
    assert shared.held_key() is None  # the run released it


@pytest.mark.ray
def test_ray_run_keeps_one_actor_pool_for_the_three_model_stages(ray_session, tiny_model_dir, tmp_path):
    started = {}
    for share in (True, False):
        executor = RayExecutor(share_engines=share)
        run_pipeline(load_config(None, _settings(tiny_model_dir, share)), tmp_path / str(share), stages=_STAGES,
                     executor=executor)
        started[share] = executor.actors_started
        assert executor._kept is None  # closed at the end of the run
    assert started == {True: 1, False: 3}
    assert _tables(tmp_path / "True") == _tables(tmp_path / "False")


def test_another_engine_releases_the_held_one():
    loads = []
    with shared.sharing():
        first = shared.shared(("hf", "a"), lambda: loads.append("a") or object())
        assert shared.shared(("hf", "a"), lambda: loads.append("a again") or object()) is first
        shared.shared(("hf", "b"), lambda: loads.append("b") or object())
        assert shared.held_key() == ("hf", "b")
    assert loads == ["a", "b"] and shared.held_key() is None
    outside = [shared.shared(("hf", "a"), object) for _ in range(2)]
    assert outside[0] is not outside[1]  # outside a run nothing is kept
