"""End to end on the demo corpus: a full run vs the reruns that resume rules make cheap.

Prints seconds for (1) a full run of every stage, (2) a rerun with nothing changed, (3) a rerun
after a reward setting changed (score and what follows redo; ingest, sample and perturb are
reused), and the ratios against the full run. Then the model stages' GPU-side cost on the same
corpus, ``[run] share_engines`` on vs off (the "before"): model loads per run (sample, perturb and
reference on one engine) and the reference stage's forward tokens per task. In-process (``--no-ray``) so the figures measure the
pipeline, not Ray's worker start-up; ``--ray`` measures through a local Ray instance.

    .venv/bin/python bench/bench_pipeline.py [--n-tasks 48] [--ray]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from stages.lib.models import build_tiny_vlm
from stages.vlm import shared

_MODEL_STAGES = ["ingest", "sample", "perturb", "score", "rank", "reference"]


def _timed(cfg, run_dir: Path, use_ray: bool) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    summaries = run_pipeline(cfg, run_dir, use_ray=use_ray, progress=False)
    return time.perf_counter() - start, {s.stage: s.shards_run for s in summaries}


def _model_stage_cost(base: Path, overrides: list[str], run_dir: Path, use_ray: bool, extra: list[str]) -> dict[str, float]:
    """Loads, seconds and reference forward tokens per task of ingest -> reference (train and eval off)."""
    shared.reset_load_counts()
    cfg = load_config(base, [*overrides, "train.enabled=false", "eval.enabled=false", *extra])
    start = time.perf_counter()
    run_pipeline(cfg, run_dir, stages=_MODEL_STAGES, use_ray=use_ray, progress=False)
    seconds = time.perf_counter() - start
    store = RunStore(run_dir)
    ref = store.read_manifest("reference").shards.values()
    tokens = sum(r.metrics.get("scored_tokens", float("nan")) for r in ref)
    lists = sum(r.metrics.get("lists", 0.0) for r in ref)
    return {"loads": float(sum(shared.load_counts().values())), "seconds": seconds, "tokens_per_task": tokens / max(lists, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-tasks", type=int, default=48)
    parser.add_argument("--ray", action="store_true", help="run through a local Ray instance")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_vlm(Path(tmp) / "tiny-vlm")
        base = Path(__file__).resolve().parents[1] / "pipeline.toml"
        overrides = [f'sample.engine.model="{model}"', f"ingest.n_tasks={args.n_tasks}", "run.progress=false"]
        run_dir = Path(tmp) / "run"
        full, ran_full = _timed(load_config(base, overrides), run_dir, args.ray)
        noop, ran_noop = _timed(load_config(base, overrides), run_dir, args.ray)
        changed_cfg = load_config(base, [*overrides, 'score.reward_kinds={ ocr = "anls" }'])
        changed, ran_changed = _timed(changed_cfg, run_dir, args.ray)
        before = _model_stage_cost(base, overrides, Path(tmp) / "before", args.ray,
                                   ["run.share_engines=false", "reference.reuse_sampled_logprobs=false"])
        after = _model_stage_cost(base, overrides, Path(tmp) / "after", args.ray, [])
    mode = "ray" if args.ray else "in-process"
    print(f"demo corpus, {args.n_tasks} tasks, tiny model, {mode}")
    print(f"full run                 {full:7.2f} s  shards run {ran_full}")
    print(f"rerun, nothing changed   {noop:7.2f} s  shards run {ran_noop}  ({full / noop:.1f}x faster than full)")
    print(f"rerun, reward changed    {changed:7.2f} s  shards run {ran_changed}  ({full / changed:.1f}x faster than full)")
    print("model stages (ingest -> reference), before = share_engines off and every response re-scored:")
    if args.ray:
        print("  (on Ray the loads happen in the actors and are not counted here: see tests/pipeline/test_shared_engines.py)")
    for name in ("loads", "tokens_per_task", "seconds"):
        b, a = before[name], after[name]
        ratio = f"{a / b:.2f}x" if b else "n/a"
        print(f"  {name:<16} before {b:9.2f}  after {a:9.2f}  after/before {ratio}")


if __name__ == "__main__":
    main()
