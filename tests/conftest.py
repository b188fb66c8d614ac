"""Session-wide fixtures: one local Ray instance and one tiny model per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations 2.0.8 asks PyPI for updates on import


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model is overhead-bound: one torch thread beats two contended ones on a 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance (2 CPUs, no dashboard) shared by every test that needs it, shut down at the end."""
    import ray

    if not ray.is_initialized():
        # address="local": never join a cluster another process runs on this machine (a bare init would)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny offline VLM, built once per session and loaded through from_pretrained like a Hub id."""
    from stages.lib.models.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory):
    """``tiny_family_dir(name)``: the folder of the tiny build of a real VLM family
    (stages/lib/models/tiny_families.py), built on first use and reused for the whole session.
    A family whose processor needs a package this environment lacks (torchvision, num2words) is skipped."""
    import importlib.util

    from stages.lib.models.tiny_families import build_tiny_family

    root = tmp_path_factory.mktemp("tiny-families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            try:
                path = build_tiny_family(name, root / name, seed=0)
                from transformers import AutoProcessor

                AutoProcessor.from_pretrained(path)  # some processors fail only when loaded back
            except Exception as exc:
                missing = [p for p in ("torchvision", "num2words") if importlib.util.find_spec(p) is None]
                if missing:
                    pytest.skip(f"{name}: {str(exc).splitlines()[0]} (missing here: {', '.join(missing)})")
                raise
            built[name] = path
        return built[name]

    return get


@pytest.fixture(scope="session")
def tiny_sampler(tiny_model_dir: Path):
    """An HFSampler on the tiny model, CPU, batch of 4 requests; tests that change batch_size restore it."""
    from stages.vlm.hf_engine import HFSampler

    return HFSampler(tiny_model_dir, device="cpu", batch_size=4)
