"""Benchmark of the shard check: reading an input shard with its sha256 check vs without.

A worker reads each input shard once: :func:`pipeline.shard_check.read_checked` reads the file's bytes,
hashes them and decodes the table from the same bytes; the baseline is the plain ``pq.read_table(path)``
every shard read was before, measured in the same run on the same file (warm page cache for both, so
the figure is the CPU cost of the check, not disk). The shard is written as the store writes it (zstd,
1024-row groups): an image column of incompressible bytes (as JPEG/PNG are) plus text columns, like an
ingest or sample shard with embedded images.

Run: ``.venv/bin/python bench/bench_shard_check.py [--rows 256 --image-kb 60 --repeats 20]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.shard_check import read_checked
from stages.lib.files import atomic_write_parquet


def make_shard(path: Path, rows: int, image_kb: int) -> str:
    """Write a shard of ``rows`` rows, each with an ``image_kb`` KiB image; return its sha256."""
    table = pa.table({
        "task_id": [f"t{i}" for i in range(rows)],
        "prompt": [f"Locate the object number {i} in the image and answer with its box." for i in range(rows)],
        "text": [f"The object is at [{i}, {i + 3}, {i + 40}, {i + 52}]." * 4 for i in range(rows)],
        "image": [os.urandom(image_kb * 1024) for _ in range(rows)],
    })
    return atomic_write_parquet(path, table)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--image-kb", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-00000.parquet"
        sha = make_shard(path, args.rows, args.image_kb)
        size = path.stat().st_size / 2**20
        plain = best_of(lambda: pq.read_table(path), args.repeats)
        checked = best_of(lambda: read_checked(path, sha), args.repeats)
    print(f"shard: {args.rows} rows, {size:.1f} MiB")
    print(f"pq.read_table (baseline):   {plain * 1e3:7.1f} ms  ({size / plain:7.0f} MiB/s)")
    print(f"read_checked (sha256 check): {checked * 1e3:7.1f} ms  ({size / checked:7.0f} MiB/s)")
    print(f"ratio checked / plain: {checked / plain:.2f}x")


if __name__ == "__main__":
    main()
