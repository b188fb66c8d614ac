"""Resumable checkpoints: what they hold, atomic writes, pruning, per-rank RNG, stale temporaries."""

from __future__ import annotations

import pytest
import torch

from stages.train import checkpoint as ckpt
from stages.train.checkpoint import is_checkpoint, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, trainable_state


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # frozen: not in the checkpoint
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    return model, optimizer, scheduler


def _train_step(model, optimizer, scheduler) -> None:
    model(torch.randn(5, 3)).pow(2).sum().backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def _save(root, step, model, optimizer, scheduler, keep=2, rank_rng=None):
    counters = {"step": step, "data_digest": "d"}
    return save_checkpoint(root, step, model, optimizer, scheduler, counters, {"lr": 0.1}, keep, rank_rng)


def test_trainable_state_holds_only_trained_parameters():
    model, _, _ = _setup()
    assert sorted(trainable_state(model)) == ["0.weight", "1.bias", "1.weight"]


def test_load_restores_weights_optimizer_scheduler_rng_and_counters(tmp_path):
    model, optimizer, scheduler = _setup()
    _train_step(model, optimizer, scheduler)
    path = _save(tmp_path, 1, model, optimizer, scheduler)
    expected_next = torch.rand(3)  # drawn right after the saved RNG state
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    lr = optimizer.param_groups[0]["lr"]
    _train_step(model, optimizer, scheduler)  # move everything on

    other, other_opt, other_sched = _setup(seed=1)
    other[0].bias.data.copy_(model[0].bias.data)  # the frozen part comes from the base model, not the checkpoint
    saved = load_checkpoint(path, other, other_opt, other_sched)
    assert saved == {"counters": {"step": 1, "data_digest": "d"}, "config": {"lr": 0.1}}
    for key, value in other.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    assert other_opt.param_groups[0]["lr"] == lr and other_sched.last_epoch == 1
    assert other_opt.state_dict()["state"][0]["step"] == 1
    assert torch.equal(torch.rand(3), expected_next)


def test_each_rank_gets_its_own_rng_back(tmp_path):
    model, optimizer, scheduler = _setup()
    states = []
    for seed in (10, 20):
        torch.manual_seed(seed)
        states.append(rng_state())
    path = _save(tmp_path, 1, model, optimizer, scheduler, rank_rng=states)
    for rank, seed in enumerate((10, 20)):
        load_checkpoint(path, model, optimizer, scheduler, rank=rank)
        assert torch.equal(torch.rand(2), _draw(seed))


def _draw(seed: int) -> torch.Tensor:
    """What torch.rand(2) gives right after torch.manual_seed(seed), without disturbing the global stream."""
    return torch.rand(2, generator=torch.Generator().manual_seed(seed))


def test_older_checkpoints_are_pruned_and_the_newest_is_found(tmp_path):
    model, optimizer, scheduler = _setup()
    assert latest_checkpoint(tmp_path / "none") is None
    for step in (1, 2, 3):
        _save(tmp_path, step, model, optimizer, scheduler, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002", "step-00000003"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000003"
    (tmp_path / "step-00000009").mkdir()  # a folder without its checkpoint file is not a checkpoint
    assert not is_checkpoint(tmp_path / "step-00000009") and latest_checkpoint(tmp_path) == tmp_path / "step-00000003"


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_partial_one(tmp_path, monkeypatch):
    model, optimizer, scheduler = _setup()
    _save(tmp_path, 1, model, optimizer, scheduler)

    def broken_save(obj, path):
        path.write_bytes(b"half")  # part of the file is on disk when the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, model, optimizer, scheduler)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no step-2, no temporary
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000001"


def test_a_killed_writers_staging_folder_is_ignored_and_cleaned_by_the_run_store(tmp_path):
    from pipeline.store import RunStore
    from stages.lib.files import temp_path

    root = tmp_path / "train" / "artifacts" / "checkpoints"
    model, optimizer, scheduler = _setup()
    _save(root, 1, model, optimizer, scheduler)
    staging = temp_path(root / "step-00000002")  # what atomic_folder was filling when the process was killed
    staging.mkdir()
    (staging / ckpt._FILE).write_bytes(b"half")
    assert latest_checkpoint(root) == root / "step-00000001"
    assert RunStore(tmp_path).remove_stale_temporaries("train") == 1
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001"]
