"""Starting, joining and stopping Ray. The only module besides the executor that imports ray."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from pipeline.config import RayConfig
from stages.lib.errors import ConfigError
from stages.lib.files import atomic_write_bytes, temp_path

__all__ = ["ensure_ray", "shutdown_ray", "check_run_dir_shared", "probe_run_dir", "QUIET_ENV"]

# Set in the driver and shipped to every worker: no per-load progress bars from transformers /
# huggingface_hub in the logs, and no update check to PyPI when albumentations is imported.
PROBE_TIMEOUT_S = 120.0  # a node that cannot run a zero-CPU task for this long is not usable either

QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def ensure_ray(cfg: RayConfig) -> bool:
    """Make sure Ray is initialised; return True if this call started it (and so should stop it).

    An already initialised Ray (a test session, a notebook) is reused as is. ``address = "auto"``
    joins an existing cluster; otherwise a new local instance with ``num_cpus`` CPUs is started,
    without the dashboard (never a cluster this machine happens to belong to).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        "runtime_env": {"env_vars": {k: os.environ[k] for k in QUIET_ENV}},
    }
    if cfg.address:
        kwargs["address"] = cfg.address
    else:
        # "local": a new instance even when this machine runs a cluster (`ray start`, a test cluster),
        # which a bare ray.init() would join (and then refuse num_cpus)
        kwargs["address"] = "local"
        kwargs["num_cpus"] = cfg.num_cpus
        if cfg.num_gpus is not None:
            kwargs["num_gpus"] = cfg.num_gpus
        if cfg.object_store_memory is not None:
            kwargs["object_store_memory"] = cfg.object_store_memory
    ray.init(**kwargs)
    return True


def shutdown_ray() -> None:
    """Stop the Ray instance this process started."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def probe_run_dir(run_dir: str, probe_name: str, token: str) -> str:
    """On one node: "" if ``run_dir`` holds the probe file with ``token`` and accepts a new file, else why not."""
    folder = Path(run_dir)
    try:
        seen = (folder / probe_name).read_text()
    except OSError as exc:
        return f"cannot read {folder / probe_name} ({type(exc).__name__})"
    if seen != token:
        return f"{folder} is another folder there (the probe file differs)"
    scratch = temp_path(folder / probe_name)
    try:
        scratch.write_bytes(b"")
        scratch.unlink()
    except OSError as exc:
        return f"cannot write into {folder} ({type(exc).__name__})"
    return ""


def check_run_dir_shared(run_dir: Path) -> None:
    """Raise :class:`ConfigError` (one line) unless every alive Ray node sees ``run_dir`` at the same path.

    Workers read their input shards and write their outputs there themselves, so the run folder must
    be on storage every node mounts at the same path (NFS, a shared volume). Each node runs a small
    zero-CPU task pinned to it that reads a probe file the driver wrote and writes one of its own. A
    cluster of one node (the local instance) is this machine and is not probed.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return
    folder = Path(run_dir).resolve()
    probe_name = f".node-probe-{uuid.uuid4().hex[:12]}"
    token = uuid.uuid4().hex
    atomic_write_bytes(folder / probe_name, token.encode())
    probe = ray.remote(probe_run_dir)
    try:
        refs = {
            probe.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(folder), probe_name, token): node
            for node in nodes
        }
        for ref, node in refs.items():
            try:
                problem = ray.get(ref, timeout=PROBE_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                problem = f"the node did not answer within {PROBE_TIMEOUT_S:.0f}s"
            if problem:
                raise ConfigError(
                    f"the run folder is not shared with Ray node {node.get('NodeManagerAddress', '?')} "
                    f"({node['NodeID'][:12]}): {problem}; put the run folder on storage every node mounts at "
                    f"the same path and pass it with --run-dir"
                )
    finally:
        (folder / probe_name).unlink(missing_ok=True)
