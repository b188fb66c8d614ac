"""`make reproduce`: every loss trained from the warm-started demo policy on the same data, evaluated on held-out tasks.

1. The warm-started tiny policy (``runs/_models/tiny-vlm-warm``, built once and cached; see
   ``stages/lib/models/warm_start.py``).
2. One data run (``pipeline.toml`` with the warm policy, train and eval off): ingest with a held-out
   split, sample, perturb, score, rank, reference. Every method trains on exactly these lists.
3. For each method (sft dpo ipo perpo mdpo mipo leanpo povid) and each of 3 seeds (the seed of the data
   order): train with the same optimizer, learning rate and number of steps, then answer the held-out
   tasks (greedy + n samples) and score them with the same rewards. The starting policy is evaluated once.
4. One table (method x task type, mean [95% bootstrap interval over tasks, seeds averaged per task]) and a
   bar chart, written into ``bench/RESULTS.md`` and ``bench/reproduce.png``.

Steps and learning rate are one rule for all methods, not tuned per method: ``--epochs`` passes over the
lists (default 2) at ``--lr`` (default 1e-4, a thirtieth of the warm start's peak rate: at PerPO's
published 5e-6 the 0.5M-parameter policy's greedy answers do not change within two epochs). The table's
"changed" column (share of held-out tasks whose greedy answer differs from the starting policy's) shows
that every method moved the policy.

    .venv/bin/python bench/reproduce.py [--workers 2] [--n-tasks 160] [--seeds 3] [--out runs/reproduce]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.reproduce_report import aggregate, write_results

METHODS = ("sft", "dpo", "ipo", "perpo", "mdpo", "mipo", "leanpo", "povid")
WARM_MODEL = ROOT / "runs" / "_models" / "tiny-vlm-warm"


def _overrides(args: argparse.Namespace) -> list[str]:
    return [
        f'sample.engine.model="{WARM_MODEL}"',
        f"ingest.n_tasks={args.n_tasks}",
        f"ingest.eval_fraction={args.eval_fraction}",
        "run.progress=false",
        "run.export=false",
        "train.enabled=false",
        "eval.enabled=false",
        "reference.povid_image_term=true",  # povid (as published) scores the noisy-image argmax under the reference
        "run.viewer=false",
    ]


def _load(args: argparse.Namespace):
    from pipeline.config import load_config

    return load_config(ROOT / "pipeline.toml", _overrides(args))


def _tables(run_dir: Path):
    from pipeline.store import RunStore

    store = RunStore(run_dir)
    tasks = store.read_table("ingest", "tasks", "tasks")
    eval_tasks = store.read_table("ingest", "eval_tasks", "tasks")
    listwise = store.read_table("reference", "listwise", "listwise")
    return tasks, eval_tasks, listwise


def _eval(cfg, eval_tasks, role: str, model: str) -> list[dict]:
    from stages.eval.stage import evaluate_models

    rows, _, _ = evaluate_models(cfg.eval.model_copy(update={"compare_start": False}), eval_tasks, {role: model})
    return rows


def _job(args: argparse.Namespace, run_dir: Path, method: str, seed: int, steps: int) -> tuple[str, int, list[dict], float]:
    """Train one method with one seed from the warm policy, then evaluate it (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)
    from stages.train.loop import train_model

    cfg = _load(args)
    tasks, eval_tasks, listwise = _tables(run_dir)
    # validated, not model_copy(update=...): that would keep the plain string where the config holds a LossName
    train_cfg = type(cfg.train).model_validate({
        **cfg.train.model_dump(), "enabled": True, "model": str(WARM_MODEL), "loss": method, "seed": seed,
        "max_steps": steps, "learning_rate": args.lr, "save_every": steps, "keep_checkpoints": 1, "warmup_steps": 0,
    })
    started = time.perf_counter()
    out = Path(args.out) / "methods" / f"{method}-seed{seed}"
    result = train_model(train_cfg, tasks, listwise, out)
    rows = _eval(cfg, eval_tasks, "trained", result["model_dir"])
    return method, seed, rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="processes training methods in parallel (one core each)")
    parser.add_argument("--n-tasks", type=int, default=160)
    parser.add_argument("--eval-fraction", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the lists, the same for every method")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate, the same for every method")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default=str(ROOT / "runs" / "reproduce"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    import torch

    torch.set_num_threads(1)  # the tiny model is overhead-bound; the workers take the other cores

    from pipeline.runner import run_pipeline
    from stages.lib.models.warm_start import ensure_warm_tiny_vlm

    _, built = ensure_warm_tiny_vlm(WARM_MODEL, log=print)
    warm_seconds = time.perf_counter() - started
    print(f"warm-started policy: {WARM_MODEL} ({'built' if built else 'cached'}, {warm_seconds:.0f}s)", flush=True)
    cfg = _load(args)
    run_dir = Path(args.out) / "data"
    run_pipeline(cfg, run_dir, use_ray=False, progress=False)
    tasks, eval_tasks, listwise = _tables(run_dir)
    steps = max(1, round(args.epochs * listwise.num_rows))
    data_seconds = time.perf_counter() - started - warm_seconds
    print(f"data: {tasks.num_rows} train tasks, {eval_tasks.num_rows} held-out, {listwise.num_rows} lists; "
          f"{steps} steps per method ({data_seconds:.0f}s)", flush=True)

    rows = {"start": {0: _eval(cfg, eval_tasks, "trained", str(WARM_MODEL))}}
    jobs = [(m, s) for m in args.methods.split(",") for s in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_job, args, run_dir, m, s, steps) for m, s in jobs]
        for future in futures:
            method, seed, method_rows, seconds = future.result()
            rows.setdefault(method, {})[seed] = method_rows
            print(f"{method:<7} seed {seed}: trained and evaluated in {seconds:.0f}s", flush=True)
    total = time.perf_counter() - started
    table = aggregate(rows, confidence=cfg.eval.confidence, samples=cfg.eval.bootstrap_samples)
    setup = {
        "command": "make reproduce  (.venv/bin/python bench/reproduce.py)",
        "train_tasks": tasks.num_rows, "eval_tasks": eval_tasks.num_rows, "lists": listwise.num_rows,
        "steps": steps, "epochs": args.epochs, "lr": args.lr, "seeds": args.seeds, "n": cfg.eval.n,
        "seconds": round(total), "warm_seconds": round(warm_seconds), "workers": args.workers,
    }
    print(write_results(table, setup, Path(args.results), ROOT / "bench" / "reproduce.png"))


if __name__ == "__main__":
    main()
