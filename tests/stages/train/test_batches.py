"""Which lists each step trains on: per-epoch permutations and the step count."""

from __future__ import annotations

from stages.train import TrainConfig
from stages.train.batches import micro_batch_indices, total_steps


def test_data_order_is_a_permutation_per_epoch():
    cfg = TrainConfig(micro_batch_size=2, seed=3)
    epoch0 = sum((micro_batch_indices(g, 5, cfg) for g in range(3)), [])
    epoch1 = sum((micro_batch_indices(g, 5, cfg) for g in range(3, 6)), [])
    assert sorted(epoch0) == sorted(epoch1) == list(range(5))
    assert total_steps(5, TrainConfig(micro_batch_size=2, gradient_accumulation_steps=2, epochs=2)) == 3
    assert total_steps(5, TrainConfig(max_steps=7)) == 7
