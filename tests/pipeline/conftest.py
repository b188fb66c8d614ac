"""Fixtures of the pipeline tests: the fake three-stage registry (tests/pipeline/fake_stages.py)."""

from __future__ import annotations

import pytest

from pipeline import config as config_module
from stages import registry
from tests.pipeline import fake_stages


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the real stages by the fake ones (src, upper, summary) for one test."""
    monkeypatch.setattr(registry, "stage_specs", lambda: fake_stages.SPECS)
    config_module.pipeline_config_cls.cache_clear()
    fake_stages.CALLS.clear()
    yield
    config_module.pipeline_config_cls.cache_clear()
