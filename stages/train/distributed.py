"""Multi-process training helpers: the process group torchrun / ``accelerate launch`` describe, and the data split.

A launcher starts one process per GPU and tells each its place through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Without them (or with
``WORLD_SIZE=1``) every helper here is a no-op and training is the plain single-process loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "DistInfo",
    "SINGLE",
    "init_distributed",
    "current",
    "barrier",
    "cleanup",
    "rank_split",
    "all_reduce_sum",
    "all_gather_objects",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: global rank, number of processes, rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (global rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


SINGLE = DistInfo()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        from stages.lib.errors import ConfigError

        raise ConfigError(f"environment variable {name}={raw!r} is not an integer; launch with torchrun") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group the launcher's env vars describe; single-process ``SINGLE`` if WORLD_SIZE is unset or 1.

    ``device`` is the train config's (``auto`` / ``cpu`` / ``cuda``): on CUDA each process binds
    GPU ``LOCAL_RANK`` and the backend is NCCL, otherwise gloo. Calling it twice is harmless.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return SINGLE
    import torch
    import torch.distributed as dist

    from stages.vlm.load import resolve_device

    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    cuda = resolve_device(device, "train") == "cuda"
    if cuda:
        if local_rank >= torch.cuda.device_count():
            from stages.lib.errors import ConfigError

            raise ConfigError(
                f"LOCAL_RANK {local_rank} but this machine shows {torch.cuda.device_count()} GPU(s); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def current() -> DistInfo:
    """The process group already joined (by :func:`init_distributed` or the caller), else ``SINGLE``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0))


def barrier(info: DistInfo) -> None:
    """Wait until every process reaches this point (no-op single-process)."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_split(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s share of a global micro-batch: every ``world_size``-th index from position ``rank``.

    Disjoint across ranks and together the whole batch; the caller pads the epoch's order so every
    batch length is a multiple of ``world_size`` (each rank then gets the same number of lists).
    """
    return list(indices[rank::world_size])


def all_reduce_sum(values: list[float], info: DistInfo, device: Any = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64 on ``device``: NCCL needs the GPU)."""
    if not info.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` single-process."""
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(module: Any, info: DistInfo, find_unused_parameters: bool) -> Any:
    """``DistributedDataParallel(module)`` on the module's device (one GPU per process, or CPU with gloo)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    device_ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
