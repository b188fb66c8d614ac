"""Benchmark of the rank stage and the export.

1. rank: ``run_shard`` on a synthetic shard (tasks x N scored candidates) against a baseline measured
   in the same run: the least any ranker does (rows to Python, group by task, sort by reward).
2. export: ``export_dataset`` (pyarrow, images joined by task_id) against ``datasets`` building the
   same pairs rows from Python dicts and writing Parquet (``Dataset.from_list(...).to_parquet``).

Run: ``.venv/bin/python bench/bench_rank.py [--tasks 2000 --n 16]``
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_schemas.images import encode_image_cell
from data_schemas.tables import validate_table
from stages.base import ShardInputs, ShardOutput
from stages.rank import SPEC, RankConfig


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(buf, format="PNG")
    return buf.getvalue()


def make_shard(n_tasks: int, n: int, seed: int = 0):
    rng = random.Random(seed)
    tasks = validate_table(
        [
            {"task_id": f"t{i}", "task_type": "grounding", "image": encode_image_cell(_png(i)), "image_sha256": "0" * 64,
             "width": 64, "height": 64, "prompt": f"Locate object {i}.", "answer": None, "boxes": None, "answers": None,
             "choices": None, "source": None, "meta": None}
            for i in range(n_tasks)
        ],
        "tasks",
    )
    nulls = ("finish_reason", "model", "sample_index", "seed", "sampling", "distortion", "reward_kind", "parse_ok", "detail")
    scored = validate_table(
        [
            {"task_id": f"t{i}", "cand_id": f"t{i}-{j}", "origin": "policy", "text": f"[{rng.randrange(64)}, 3, 40, 50]",
             "reward": round(rng.random(), 2), "logprob_sum": -rng.random() * 20, "n_tokens": 12} | dict.fromkeys(nulls)
            for i in range(n_tasks)
            for j in range(n)
        ],
        "scored",
    )
    return tasks, scored


def baseline_rank(scored) -> int:
    by_task = defaultdict(list)
    for row in scored.select(["task_id", "text", "reward"]).to_pylist():
        by_task[row["task_id"]].append(row)
    return sum(len(sorted(rows, key=lambda r: -r["reward"])) for rows in by_task.values())


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tasks, scored = make_shard(args.tasks, args.n)
    out = ShardOutput(stage="rank", index=0, scratch_dir=Path("."))
    inputs = ShardInputs({"tasks": tasks, "scored": scored})

    results = {}
    for mode in ("best_vs_worst", "all_pairs"):
        config = RankConfig(pairs_mode=mode)
        results[mode] = SPEC.run_shard(inputs, out, config)
        t_rank = best_of(lambda: SPEC.run_shard(inputs, out, config), args.repeat)
        t_base = best_of(lambda: baseline_rank(scored), args.repeat)
        print(
            f"rank[{mode}]: {args.tasks} tasks x {args.n} candidates: {t_rank * 1e3:.0f} ms "
            f"({scored.num_rows / t_rank:,.0f} candidates/s, {results[mode].metrics['pairs_out']:.0f} pairs); "
            f"baseline group+sort {t_base * 1e3:.0f} ms; ratio {t_rank / t_base:.2f}x baseline"
        )

    from datasets import Dataset, Features, disable_progress_bars

    disable_progress_bars()

    from data_schemas.features import hf_features
    from pipeline.export import EXPORT_SCHEMAS, assistant_message, export_dataset, user_prompt

    tables = {"tasks": tasks, **results["best_vs_worst"].tables}
    pairs = tables["pairs"].to_pylist()
    images = dict(zip(tasks["task_id"].to_pylist(), tasks["image"].to_pylist()))
    features = Features.from_dict(hf_features(EXPORT_SCHEMAS["pairs"]))
    with tempfile.TemporaryDirectory() as tmp:
        t_export = best_of(lambda: export_dataset(tables, Path(tmp) / "hub", {}), args.repeat)

        def datasets_pairs() -> None:
            rows = [
                {"images": [images[r["task_id"]]], "prompt": user_prompt(r["prompt"]), "chosen": assistant_message(r["chosen"]),
                 "rejected": assistant_message(r["rejected"]), "chosen_reward": r["chosen_reward"],
                 "rejected_reward": r["rejected_reward"], "margin": r["margin"], "chosen_origin": r["chosen_origin"],
                 "rejected_origin": r["rejected_origin"], "task_id": r["task_id"], "task_type": "grounding"}
                for r in pairs
            ]
            Dataset.from_list(rows, features=features).to_parquet(str(Path(tmp) / "pairs.parquet"))

        t_ds = best_of(datasets_pairs, args.repeat)
    print(
        f"export: listwise+pairs+groups ({len(pairs)} pairs, {args.tasks} images): {t_export * 1e3:.0f} ms; "
        f"baseline datasets.from_list(pairs only).to_parquet {t_ds * 1e3:.0f} ms; ratio {t_export / t_ds:.2f}x baseline"
    )


if __name__ == "__main__":
    main()
