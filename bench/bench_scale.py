"""The driver at scale: peak RSS and bytes read by the driver process as the corpus grows 10x.

Runs ingest -> sample (the tiny model, one actor) -> score -> rank on the synthetic demo corpus at
``--tasks / 10`` and ``--tasks`` tasks, through a local Ray instance, once with this checkout and
once with the baseline revision (``--baseline-rev``: the last commit where the driver read every
input shard and wrote every output table itself), each run in a fresh process. Prints, per run: wall
time, tasks/s end to end, rows/s per stage, the driver's peak RSS during the run (psutil, sampled
every 20 ms; not ``ru_maxrss``, which a child process inherits from the forked parent's image) and
its RSS when the run starts (Ray already up), and the bytes the driver read (``rchar`` of /proc/self/io: every read()/pread() of files and pipes), then the ratios
10x / 1x (target: driver RSS <= 1.2x) and this checkout / baseline.

    .venv/bin/python bench/bench_scale.py [--tasks 20000] [--shard-size 200] [--baseline-rev 100bff0]

Report and export are off: they read the whole run by design (the export embeds every image).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE_REV = "100bff0"  # phase-1 head of b-pipeline: driver-side shard I/O, layout already refactored

CONFIG = """
[run]
progress = false
export = false
report = false
[ray]
num_cpus = 2
[ingest]
format = "demo"
n_tasks = {tasks}
shard_size = {shard_size}
[sample]
n = 1
max_tokens = 4
[sample.engine]
model = "{model}"
batch_size = 32
[perturb]
enabled = false
[rank]
min_spread = 0.0
[reference]
enabled = false
[train]
enabled = false
"""


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


class _RssSampler:
    """The driver's resident memory at the start of the run and its peak during it (psutil, every 20 ms)."""

    def __enter__(self) -> "_RssSampler":
        import threading

        import psutil

        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def measure(src: Path, tasks: int, shard_size: int, model: str, work: Path) -> dict:
    """In this process (started for it): run the chain with the code in ``src``; return the figures."""
    sys.path.insert(0, str(src))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline

    config = work / "p.toml"
    config.write_text(CONFIG.format(tasks=tasks, shard_size=shard_size, model=model))
    cfg = load_config(config)
    import ray  # started here, not timed: its start-up does not grow with the corpus

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}})
    sampler = _RssSampler()
    read_before = _rchar()
    start = time.perf_counter()
    with sampler:
        summaries = run_pipeline(cfg, work / "run", progress=False)
    seconds = time.perf_counter() - start
    read = _rchar() - read_before
    ray.shutdown()
    return {
        "tasks": tasks,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(tasks / seconds, 1),
        "rows_per_s": {s.stage: round(sum(s.rows.values()) / s.seconds, 1) for s in summaries if s.seconds},
        "driver_rss_at_start_mib": round(sampler.start / 2**20, 1),
        "driver_peak_rss_mib": round(sampler.peak / 2**20, 1),
        "driver_read_mib": round(read / 2**20, 2),
        "rows": {s.stage: sum(s.rows.values()) for s in summaries},
    }


def _run_one(src: Path, tasks: int, shard_size: int, model: str, tmp: Path) -> dict:
    work = Path(tempfile.mkdtemp(dir=tmp))
    out = work / "figures.json"
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from bench_scale import measure; from pathlib import Path; "
        "Path(sys.argv[6]).write_text(json.dumps(measure(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "
        "sys.argv[5], Path(sys.argv[7]))))"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}  # Ray workers import the same tree as the driver
    subprocess.run(
        [sys.executable, "-c", code, str(REPO / "bench"), str(src), str(tasks), str(shard_size), model, str(out), str(work)],
        check=True, env=env, cwd=work,
    )
    return json.loads(out.read_text())


def _baseline_tree(rev: str, tmp: Path) -> Path:
    tree = tmp / f"baseline-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _line(label: str, r: dict) -> str:
    stages = ", ".join(f"{k} {v:,.0f}" for k, v in r["rows_per_s"].items())
    grew = r["driver_peak_rss_mib"] - r["driver_rss_at_start_mib"]
    return (f"{label:<10} {r['tasks']:>6} tasks  {r['seconds']:>7.1f} s  {r['tasks_per_s']:>6.1f} tasks/s  "
            f"driver peak RSS {r['driver_peak_rss_mib']:>6.1f} MiB (+{grew:.1f} MiB during the run)  "
            f"driver read {r['driver_read_mib']:>8.2f} MiB  rows/s: {stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000, help="the 10x corpus; 1x is a tenth of it")
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--no-baseline", action="store_true", help="measure this checkout only")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from stages.lib.models import build_tiny_vlm

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = str(build_tiny_vlm(tmp / "tiny-vlm"))
        trees = {"this": REPO}
        if not args.no_baseline:
            trees["baseline"] = _baseline_tree(args.baseline_rev, tmp)
        results: dict[str, list[dict]] = {}
        for label, tree in trees.items():
            for tasks in (args.tasks // 10, args.tasks):
                r = _run_one(tree, tasks, args.shard_size, model, tmp)
                results.setdefault(label, []).append(r)
                print(_line(label, r), flush=True)
    print()
    for label, (small, big) in results.items():
        rss = big["driver_peak_rss_mib"] / small["driver_peak_rss_mib"]
        grew = [r["driver_peak_rss_mib"] - r["driver_rss_at_start_mib"] for r in (small, big)]
        read = big["driver_read_mib"] / max(small["driver_read_mib"], 1e-9)
        print(f"{label:<10} 10x / 1x: driver peak RSS {rss:.2f}x (target <= 1.2x: {'met' if rss <= 1.2 else 'NOT met'}; "
              f"growth during the run {grew[0]:.1f} -> {grew[1]:.1f} MiB), driver read {read:.2f}x, "
              f"tasks/s {big['tasks_per_s'] / small['tasks_per_s']:.2f}x")
    if "baseline" in results:
        for i, size in enumerate(("1x", "10x")):
            a, b = results["this"][i], results["baseline"][i]
            print(f"{size:<4} this / baseline: driver peak RSS {a['driver_peak_rss_mib'] / b['driver_peak_rss_mib']:.2f}x, "
                  f"driver read {a['driver_read_mib'] / max(b['driver_read_mib'], 1e-9):.3f}x, "
                  f"tasks/s {a['tasks_per_s'] / b['tasks_per_s']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
