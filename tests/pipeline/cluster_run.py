"""The multi-node scenarios of tests/pipeline/test_cluster.py, run in their own process.

    python -m tests.pipeline.cluster_run OUT.json MODEL_DIR WORK_DIR

A ``ray.cluster_utils.Cluster`` on this machine: a head node with no CPUs (it only runs the driver)
and two worker nodes of one CPU each, worker A also holding the custom resource ``accel``. Then:

1. ``routed``: ingest -> sample -> score with ``[ray] resources = {sample = {accel = 1}}``: the CPU
   stages spread over A and B, the sample actors all land on A.
2. ``lossy``: the same run into a new folder without the routing, and nodes leave mid-stage: B is
   removed once ingest shards have been committed from both A and B (a node C joins instead), then C
   is removed once sample shards have been committed from both A and C (its actor dies mid-shard).
3. ``blind``: a node that mounts the shared storage at another path joins; the run fails at start
   with one line naming it.

It has to run in its own process: the test session's Ray instance (tests/conftest.py) is a local
one, and a driver connects to one cluster at a time. Results go to OUT.json for the test to judge.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BLIND_ENV = "PERPO_TEST_STORAGE_PREFIX"  # set on the "blind" node's raylet: its workers see the storage elsewhere

CONFIG = """
[run]
progress = false
export = false
report = false
max_retries = 3
[ingest]
format = "demo"
n_tasks = 10
shard_size = 1
[sample]
model = "{model}"
n = 2
max_tokens = 8
batch_size = 4
num_actors = 2
num_cpus = {sample_cpus}
[perturb]
enabled = false
[rank]
enabled = false
[reference]
enabled = false
[train]
enabled = false
"""


def blind_node_hook() -> None:
    """Worker setup hook: on a node started with BLIND_ENV, the probe looks under another mount point,
    as on a machine that mounts the shared volume at a different path."""
    prefix = os.environ.get(BLIND_ENV)
    if not prefix:
        return
    from pipeline import ray_runtime

    real = ray_runtime.probe_run_dir
    ray_runtime.probe_run_dir = lambda run_dir, name, token: real(prefix + run_dir, name, token)


def _config(work: Path, model: str, name: str, overrides: list[str]):
    from pipeline.config import load_config

    path = work / f"{name}.toml"
    path.write_text(CONFIG.format(model=model, sample_cpus=0.5 if name == "routed" else 1))
    return load_config(path, overrides)


def _shard_nodes(run_dir: Path) -> dict[str, list[str]]:
    from pipeline.store import RunStore

    store = RunStore(run_dir)
    return {
        stage: [rec.node for _, rec in sorted(store.read_manifest(stage).shards.items())]
        for stage in ("ingest", "sample", "score")
    }


class NodeChurn:
    """Takes worker nodes away mid-stage, from the driver's manifest writes (one per committed shard here).

    B goes once ingest shards were committed from both A and B, and a fresh node C joins in its place;
    C goes once sample shards were committed from both A and C (its actor dies with it).
    """

    def __init__(self, cluster, node_a, node_b, store_bytes: int):
        self.cluster, self.a, self.b, self.store_bytes = cluster, node_a, node_b, store_bytes
        self.c = None
        self.events: list[dict] = []

    def on_manifest(self, manifest) -> None:
        committed = {rec.node for rec in manifest.shards.values()}
        if not self.events and manifest.stage == "ingest" and {self.a.node_id, self.b.node_id} <= committed:
            self._remove(manifest, self.b)
            self.c = self.cluster.add_node(num_cpus=1, object_store_memory=self.store_bytes)
            self.events[-1]["added"] = self.c.node_id
        elif len(self.events) == 1 and manifest.stage == "sample" and {self.a.node_id, self.c.node_id} <= committed:
            self._remove(manifest, self.c)

    def _remove(self, manifest, node) -> None:
        self.events.append({"stage": manifest.stage, "removed": node.node_id, "done": sorted(manifest.shards),
                            "of": manifest.n_shards})
        self.cluster.remove_node(node)


def main(out: Path, model: str, work: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.ray_runtime import QUIET_ENV
    from pipeline.runner import run_pipeline
    from pipeline.status import format_status, run_status
    from pipeline.store import RunStore
    from stages.lib.errors import ConfigError

    results: dict = {}
    store_mb = 80 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store_mb})
    try:
        node_a = cluster.add_node(num_cpus=1, resources={"accel": 2}, object_store_memory=store_mb)
        node_b = cluster.add_node(num_cpus=1, object_store_memory=store_mb)
        cluster.wait_for_nodes()
        runtime_env = {"env_vars": dict(QUIET_ENV), "worker_process_setup_hook": "tests.pipeline.cluster_run.blind_node_hook"}
        ray.init(address=cluster.address, runtime_env=runtime_env, log_to_driver=False)
        results["nodes"] = {"A": node_a.node_id, "B": node_b.node_id, "head": cluster.head_node.node_id}

        routed = work / "routed"
        run_pipeline(_config(work, model, "routed", ["ray.resources={sample = {accel = 1}}"]), routed, progress=False)
        results["routed"] = _shard_nodes(routed)
        results["routed_status"] = format_status(routed, run_status(routed))

        churn = NodeChurn(cluster, node_a, node_b, store_mb)
        original = RunStore.write_manifest

        def watched(self, manifest):
            original(self, manifest)
            churn.on_manifest(manifest)

        RunStore.write_manifest = watched
        lossy = work / "lossy"
        try:
            run_pipeline(_config(work, model, "lossy", []), lossy, progress=False)
        finally:
            RunStore.write_manifest = original
        results["lossy"] = _shard_nodes(lossy)
        results["churn"] = churn.events
        results["nodes"]["C"] = churn.c.node_id if churn.c else None

        cluster.add_node(num_cpus=1, object_store_memory=store_mb, env_vars={BLIND_ENV: "/mnt/elsewhere"})
        cluster.wait_for_nodes()
        try:
            run_pipeline(_config(work, model, "blind", []), work / "blind", progress=False)
            results["blind_error"] = None
        except ConfigError as exc:
            results["blind_error"] = str(exc)
    finally:
        ray.shutdown()
        cluster.shutdown()
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
