"""Benchmark of the HTML viewer on a synthetic run of 20,000 tasks (no model: tables built directly).

The run: demo-corpus tasks (grounding, OCR, VQA; each image drawn, scaled to ``--image-side`` px and
stored as JPEG, as photo corpora ship), 6 candidates per task (the ground truth, 3 noisy "policy"
answers, a hallucination, an answer on a distorted image), scored and ranked by the real score and
rank ``run_shard`` functions and committed through the run store, so ``write_viewer`` reads it as any run.

Measured:
1. writing the viewer on one core (the process is pinned to one CPU; wall and CPU time, since other jobs
   may share that core), against the same write over the previous viewer (thumbnails reused: the part
   that is not image work);
2. headless Chromium (Debian's chromium, Playwright) opening ``index.html`` from file:// until the
   first page of rows is shown and the filters work (``body[data-ready]``), against opening a blank
   page from the same folder; then one filter click until the count is updated.
Targets: write < 60 s, index interactive < 2 s.

Run: ``.venv/bin/python bench/bench_view.py [--tasks 20000 --image-side 384]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_schemas.images import encode_image_cell
from data_schemas.tables import validate_table
from pipeline.config import load_config
from pipeline.store import Manifest, RunStore
from stages.base import ShardInputs, ShardOutput
from stages.ingest.demo_corpus import demo_item, render_demo_item
from stages.rank import SPEC as RANK
from stages.rank import RankConfig
from stages.score import SPEC as SCORE
from stages.score import ScoreConfig

SETTINGS = ["sample.enabled=false", "perturb.enabled=false", "reference.enabled=false", "train.enabled=false"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _image(item, side: int) -> tuple[bytes, int, int, float]:
    from PIL import Image

    img = Image.open(io.BytesIO(render_demo_item(item))).convert("RGB")
    scale = side / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue(), img.width, img.height, scale


def _noisy(answer: str, rng: random.Random) -> str:
    chars = list(answer)
    for _ in range(rng.randint(1, 3)):
        if chars:
            chars[rng.randrange(len(chars))] = rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ")
    return "".join(chars)


def _texts(task: dict, rng: random.Random) -> list[tuple[str, str]]:
    """(origin, text) of the task's six candidates."""
    if task["boxes"]:
        def jitter(k: float) -> str:
            return ", ".join("[" + ", ".join(str(round(v + rng.uniform(-k, k))) for v in box) + "]" for box in task["boxes"])
        policy = [jitter(rng.choice([2, 10, 40])) for _ in range(3)]
        return [("ground_truth", task["answer"]), *(("policy", t) for t in policy), ("hallucination", jitter(25)),
                ("distorted_image", rng.choice([jitter(60), "I cannot see it."]))]
    return [("ground_truth", task["answer"]), *(("policy", _noisy(task["answer"], rng)) for _ in range(3)),
            ("hallucination", _noisy(task["answer"], rng)), ("distorted_image", rng.choice(["blue", "3", "none"]))]


def build_run(run_dir: Path, n_tasks: int, shard_size: int, side: int) -> None:
    store = RunStore(run_dir)
    manifests = {s: Manifest(stage=s, n_shards=-(-n_tasks // shard_size)) for s in ("ingest", "score", "rank")}
    rng = random.Random(0)
    for shard, start in enumerate(range(0, n_tasks, shard_size)):
        tasks, cands = [], []
        for index in range(start, min(n_tasks, start + shard_size)):
            item = demo_item(7, index)
            data, width, height, scale = _image(item, side)
            spec = item.task
            boxes = [[v * scale for v in b] for b in spec.boxes] if spec.boxes else None
            task = {"task_id": f"t{index:06d}", "task_type": spec.task_type, "image": encode_image_cell(data),
                    "image_sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height,
                    "prompt": spec.prompt, "boxes": boxes, "answers": spec.answers, "choices": spec.choices,
                    "answer": ", ".join("[" + ", ".join(str(round(v)) for v in b) + "]" for b in boxes) if boxes else spec.answer,
                    "source": f"bench:{index}", "meta": None}
            tasks.append(task)
            for k, (origin, text) in enumerate(_texts(task, rng)):
                cands.append({"task_id": task["task_id"], "cand_id": f"{task['task_id']}:{origin}:{k}", "origin": origin,
                              "text": text, "n_tokens": 8, "logprob_sum": -rng.random() * 20, "finish_reason": "stop"})
        tasks_t, cands_t = validate_table(tasks, "tasks"), validate_table(cands, "candidates")
        out = ShardOutput(stage="x", index=shard, run_dir=run_dir, scratch_dir=run_dir)
        scored = SCORE.run_shard(ShardInputs({"tasks": tasks_t, "candidates": cands_t}), out, ScoreConfig()).tables["scored"]
        ranked = RANK.run_shard(ShardInputs({"tasks": tasks_t, "scored": scored}), out, RankConfig()).tables
        for stage, tables, main in (("ingest", {"tasks": tasks_t}, "tasks"), ("score", {"scored": scored}, "scored"),
                                    ("rank", ranked, "listwise")):
            store.commit_shard(manifests[stage], shard, "bench", tables, main, None, {}, [], 0.0, write_manifest=False)
    for manifest in manifests.values():
        store.write_manifest(manifest)
    (run_dir / "config.toml").write_text("")


def write_timed(cfg, run_dir: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one viewer write."""
    from pipeline.viewer import write_viewer

    started, cpu = time.perf_counter(), time.process_time()
    write_viewer(cfg, run_dir)
    return time.perf_counter() - started, time.process_time() - cpu


def browser_times(viewer: Path, repeats: int = 3) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    (viewer / "blank.html").write_text("<!doctype html><title>blank</title><body data-ready=1></body>")
    out: dict[str, list[float]] = {"blank": [], "index": [], "filter": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(repeats):
            for name in ("blank", "index"):
                context = browser.new_context()
                page = context.new_page()
                started = time.perf_counter()
                page.goto((viewer / f"{name}.html").as_uri())
                page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
                out[name].append(time.perf_counter() - started)
                if name == "index":
                    before = page.get_by_test_id("n-shown").inner_text()
                    started = time.perf_counter()
                    page.get_by_test_id("facet-type-ocr").uncheck()
                    page.wait_for_function(f"document.querySelector('[data-testid=n-shown]').textContent !== '{before}'")
                    out["filter"].append(time.perf_counter() - started)
                context.close()
        browser.close()
    (viewer / "blank.html").unlink()
    return {k: min(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--image-side", type=int, default=384)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        build_run(run_dir, args.tasks, args.shard_size, args.image_side)
        print(f"synthetic run: {args.tasks} tasks, 6 candidates each, {args.image_side}px JPEG images "
              f"(built in {time.perf_counter() - started:.1f} s, not counted)")
        cfg = load_config(None, SETTINGS)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
        import pyarrow.dataset  # (imported by the first filtered read; not the viewer's cost)

        (fresh, fresh_cpu), (again, again_cpu) = write_timed(cfg, run_dir), write_timed(cfg, run_dir)
        viewer = run_dir / "viewer"
        files = [p for p in viewer.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"write viewer (pinned to one core, load average {load:.1f}): fresh {fresh:.1f} s wall / {fresh_cpu:.1f} s CPU; "
              f"over the previous viewer (thumbnails reused) {again:.1f} s wall / {again_cpu:.1f} s CPU; "
              f"ratio fresh/rewrite {fresh_cpu / again_cpu:.1f}x (CPU); {len(files)} files, {size / 1e6:.0f} MB; "
              f"target < 60 s: {'met' if fresh < 60 else 'met in CPU time' if fresh_cpu < 60 else 'MISSED'}")
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        times = browser_times(viewer)
        print(f"headless Chromium, file://: index interactive in {times['index']:.2f} s vs a blank page {times['blank']:.2f} s "
              f"(ratio {times['index'] / times['blank']:.1f}x); one filter click to updated counts {times['filter'] * 1000:.0f} ms; "
              f"target < 2 s: {'met' if times['index'] < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
