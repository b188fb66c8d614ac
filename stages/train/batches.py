"""Which lists each optimizer step trains on: per-epoch permutations, split across the ranks of a DDP run.

Epoch e is a fixed permutation seeded by (seed, e), the same on every rank; with several processes
an epoch wraps around to a multiple of ``world_size`` (like ``DistributedSampler``) so every global
micro-batch splits evenly, and each rank takes every ``world_size``-th list of it.
"""

from __future__ import annotations

import math

from stages.train.config import TrainConfig
from stages.train.distributed import SINGLE, DistInfo, rank_split

__all__ = ["total_steps", "micro_batch_indices", "rank_micro_batch", "step_micro_batches"]


def _epoch_length(n_lists: int, world_size: int) -> int:
    """Lists per epoch: ``n_lists`` rounded up to a multiple of ``world_size`` (the order wraps around to fill it)."""
    return math.ceil(n_lists / world_size) * world_size


def _per_epoch(n_lists: int, config: TrainConfig, world_size: int = 1) -> int:
    return math.ceil(_epoch_length(n_lists, world_size) / (config.micro_batch_size * world_size))


def total_steps(n_lists: int, config: TrainConfig, world_size: int = 1) -> int:
    """Optimizer steps of the run: ``max_steps``, else enough for ``epochs`` passes over ``world_size`` processes."""
    if config.max_steps:
        return config.max_steps
    return math.ceil(config.epochs * _per_epoch(n_lists, config, world_size) / config.gradient_accumulation_steps)


def micro_batch_indices(g: int, n_lists: int, config: TrainConfig, world_size: int = 1) -> list[int]:
    """The list indices of global micro-batch ``g`` (``micro_batch_size × world_size`` lists, fewer at an epoch's end).

    Epoch e is a fixed permutation seeded by (seed, e), the same on every rank. With several
    processes it wraps around to a multiple of ``world_size`` (like ``DistributedSampler``), so every
    global micro-batch splits evenly; single-process it is the plain permutation.
    """
    import torch

    epoch, j = divmod(g, _per_epoch(n_lists, config, world_size))
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    perm = torch.randperm(n_lists, generator=gen).tolist()
    order = [perm[i % n_lists] for i in range(_epoch_length(n_lists, world_size))]
    width = config.micro_batch_size * world_size
    return order[j * width : (j + 1) * width]


def rank_micro_batch(g: int, n_lists: int, config: TrainConfig, info: DistInfo = SINGLE) -> list[int]:
    """The list indices rank ``info.rank`` trains on in global micro-batch ``g`` (disjoint across ranks)."""
    return rank_split(micro_batch_indices(g, n_lists, config, info.world_size), info.rank, info.world_size)


def step_micro_batches(step: int, n_lists: int, config: TrainConfig, info: DistInfo = SINGLE) -> list[list[int]]:
    """This rank's micro-batches of optimizer step ``step`` (the same count on every rank)."""
    accum = config.gradient_accumulation_steps
    limit = math.inf if config.max_steps else config.epochs * _per_epoch(n_lists, config, info.world_size)
    return [rank_micro_batch(g, n_lists, config, info) for g in range(step * accum, (step + 1) * accum) if g < limit]
