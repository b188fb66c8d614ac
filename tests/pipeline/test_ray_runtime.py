"""Starting or joining Ray (pipeline/ray_runtime.py), with ray.init replaced: no Ray process starts."""

from __future__ import annotations

import pytest

from pipeline.config import RayConfig
from pipeline.ray_runtime import ensure_ray


@pytest.fixture
def init_calls(monkeypatch):
    ray = pytest.importorskip("ray")
    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_unset_address_starts_a_local_instance_even_beside_a_running_cluster(init_calls):
    """`ray start --head` on the machine must not make a plain run join it (issue 11, item 4)."""
    assert ensure_ray(RayConfig(num_cpus=3)) is True
    [kwargs] = init_calls
    assert kwargs["address"] == "local" and kwargs["num_cpus"] == 3


def test_an_address_joins_without_local_resources(init_calls):
    ensure_ray(RayConfig(address="auto", num_cpus=3, num_gpus=1))
    [kwargs] = init_calls
    assert kwargs["address"] == "auto" and "num_cpus" not in kwargs and "num_gpus" not in kwargs
