"""Fixtures of the train tests: tables with reference log-probs from the reference stage, one torch thread."""

from __future__ import annotations

import pytest
from train_tables import make_listwise, make_tasks


@pytest.fixture(scope="session")
def train_tables(tiny_model_dir, tmp_path_factory):
    """(tasks, listwise) with ref_logps filled by the reference stage from the tiny model."""
    from stages.base import ShardInputs, ShardOutput
    from stages.reference import ReferenceConfig, run_shard, setup

    config = ReferenceConfig(model=str(tiny_model_dir), device="cpu", batch_size=8, povid_image_term=True)
    tasks = make_tasks()
    inputs = ShardInputs(tables={"tasks": tasks, "listwise": make_listwise()}, resources=setup(config))
    scratch = tmp_path_factory.mktemp("reference")
    result = run_shard(inputs, ShardOutput("reference", 0, scratch), config)
    return tasks, result.tables["listwise"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tiny model is faster on one thread than on two contended ones; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
