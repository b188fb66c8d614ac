"""Starting, joining and stopping Ray. The only module besides the executor that imports ray."""

from __future__ import annotations

import logging
import os

from pipeline.config import RayConfig

__all__ = ["ensure_ray", "shutdown_ray", "QUIET_ENV"]

# Set in the driver and shipped to every worker: no per-load progress bars from transformers /
# huggingface_hub in the logs, and no update check to PyPI when albumentations is imported.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def ensure_ray(cfg: RayConfig) -> bool:
    """Make sure Ray is initialised; return True if this call started it (and so should stop it).

    An already initialised Ray (a test session, a notebook) is reused as is. An ``address`` (``"auto"``,
    ``"ray://..."``) joins that cluster; unset starts a local instance with ``num_cpus`` CPUs, without
    the dashboard, as ``address="local"``: a plain ``ray.init()`` would join a cluster started on this
    machine with ``ray start`` (or named by ``RAY_ADDRESS``) and then refuse ``num_cpus``; "local" starts
    a new instance even then (ray.init docs, https://docs.ray.io/en/latest/ray-core/api/doc/ray.init.html).
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
