"""Past one machine: a head and two worker nodes (``ray.cluster_utils.Cluster``), nodes that leave mid-stage.

The scenarios run in a subprocess (tests/pipeline/cluster_run.py: a driver can join one Ray cluster
at a time, and this session's Ray is a local instance); this file judges what it recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.store import RunStore

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TABLES = (("ingest", "tasks"), ("sample", "candidates"), ("score", "scored"))


@pytest.fixture(scope="module")
def cluster_runs(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster")
    out = work / "results.json"
    # Its own Ray temp folder: a Cluster records its address in <RAY_TMPDIR>/ray/ray_current_cluster, which
    # a bare ray.init() anywhere on the machine would join. Short, for Ray's Unix socket paths.
    ray_tmp = Path(tempfile.mkdtemp(prefix="prc-", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(ray_tmp)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.pipeline.cluster_run", str(out), str(tiny_model_dir), str(work)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text()), work


def test_shards_of_cpu_and_model_stages_land_on_several_nodes(cluster_runs):
    results, _ = cluster_runs
    nodes = results["nodes"]
    routed, lossy = results["routed"], results["lossy"]
    assert {nodes["A"], nodes["B"]} <= set(routed["ingest"]) and {nodes["A"], nodes["B"]} <= set(routed["score"])
    assert nodes["head"] not in set(routed["ingest"]) | set(routed["score"])  # the head has no CPU for shards
    assert {nodes["A"], nodes["C"]} <= set(lossy["sample"])  # one actor per worker node
    assert all(len(node) == 56 for stage in routed.values() for node in stage)  # recorded per shard, hex node ids


def _nodes_line(status: str, stage: str) -> str:
    lines = status.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"{stage} "))
    return lines[i + 1].strip()


def test_status_shows_the_nodes_of_each_stage(cluster_runs):
    results, _ = cluster_runs
    status = results["routed_status"]
    a, b = results["nodes"]["A"][:12], results["nodes"]["B"][:12]
    ingest = _nodes_line(status, "ingest")
    assert ingest.startswith("nodes: ") and f"{a} (" in ingest and f"{b} (" in ingest
    assert _nodes_line(status, "sample") == f"nodes: {a} (10)"


def test_custom_resources_route_the_model_stage(cluster_runs):
    results, _ = cluster_runs
    assert set(results["routed"]["sample"]) == {results["nodes"]["A"]}  # only A has `accel`


def test_nodes_removed_mid_stage_lose_nothing(cluster_runs):
    results, work = cluster_runs
    churn = results["churn"]
    assert [(e["stage"], e["removed"]) for e in churn] == [("ingest", results["nodes"]["B"]), ("sample", results["nodes"]["C"])]
    assert all(len(e["done"]) < e["of"] for e in churn), churn  # removed mid-stage: shards were still to run
    for event in churn:  # what was not committed yet when a node left was done by the others
        stage_nodes = results["lossy"][event["stage"]]
        later = [node for index, node in enumerate(stage_nodes) if index not in event["done"]]
        assert later and event["removed"] not in later
    for stage, table in TABLES:
        routed = RunStore(work / "routed").read_table(stage, table, table)
        lossy = RunStore(work / "lossy").read_table(stage, table, table)
        assert lossy.num_rows == routed.num_rows > 0
        assert lossy.equals(routed), f"{stage} differs after losing nodes"
        assert RunStore(work / "lossy").read_manifest(stage).complete
    for part in sorted((work / "routed").rglob("part-*.parquet")):
        twin = work / "lossy" / part.relative_to(work / "routed")
        assert twin.read_bytes() == part.read_bytes(), part
    assert not [p for p in (work / "lossy").rglob("*") if ".tmp" in p.name]


def test_a_node_that_cannot_see_the_run_folder_stops_the_run_in_one_line(cluster_runs):
    results, work = cluster_runs
    error = results["blind_error"]
    assert error is not None and "\n" not in error
    assert error.startswith("the run folder is not shared with Ray node ")
    assert "cannot read /mnt/elsewhere" in error and "FileNotFoundError" in error
    assert not (work / "blind" / "ingest").exists()  # nothing ran
