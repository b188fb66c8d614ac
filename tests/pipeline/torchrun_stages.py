"""Small stages the torchrun executor tests run in real torchrun processes (imported there by module path)."""

from __future__ import annotations

import os

import pyarrow as pa
from pydantic import Field

from stages.base import ShardResult, StageConfig, StageSpec
from stages.lib.errors import ConfigError


class RankConfig(StageConfig):
    fail: str = Field("", description="'' | 'config_on_rank_1' | 'once' | 'kill_rank_1'")


def rank_run(inputs, output, cfg: RankConfig) -> ShardResult:
    """Joins the gloo group torchrun describes, sums the ranks, and returns a table naming its own rank."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    with open(output.scratch_dir / f"attempts-{rank}", "a") as fh:
        fh.write("x")
    if cfg.fail == "config_on_rank_1" and rank == 1:
        raise ConfigError("[rank] fail: rank 1 says the config is wrong")
    if cfg.fail == "once" and (output.scratch_dir / "attempts-0").read_text() == "x":
        raise RuntimeError("first attempt fails")
    if cfg.fail == "kill_rank_1" and rank == 1:
        os._exit(3)
    dist.init_process_group("gloo")
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    rows = inputs.table("pairs").num_rows
    table = pa.table({"task_id": [f"rank {rank}"], "prompt": [f"world {world}"], "chosen": [f"rank sum {total.item():g}"],
                      "rejected": [f"rows {rows}"]})
    return ShardResult(tables={"pairs": table}, metrics={"rank": float(rank)}, artifacts=[str(output.scratch_dir)])


RANK_SPEC = StageSpec(name="ranks", config_cls=RankConfig, reads=("pairs",), writes=("pairs",), run_shard=rank_run)
