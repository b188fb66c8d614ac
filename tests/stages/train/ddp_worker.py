"""Launched by test_distributed.py under torchrun: in one process group, train straight, then crash at step 3 and resume.

Usage: ``torchrun --nproc_per_node=2 --standalone ddp_worker.py FOLDER``; FOLDER holds config.json,
tasks.parquet and listwise.parquet, and receives straight/, resumed/ and resumed.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch

from stages.train.config import TrainConfig
from stages.train.distributed import cleanup, init_distributed
from stages.train.loop import train_model


class Crash(Exception):
    pass


def crash_at_3(record: dict) -> None:
    if record["step"] == 3:
        raise Crash


def main(folder: Path) -> None:
    torch.set_num_threads(1)
    config = TrainConfig.model_validate_json((folder / "config.json").read_text())
    tasks, listwise = pq.read_table(folder / "tasks.parquet"), pq.read_table(folder / "listwise.parquet")
    info = init_distributed(config.device)
    try:
        train_model(config, tasks, listwise, folder / "straight")
        try:
            train_model(config, tasks, listwise, folder / "resumed", on_step=crash_at_3)
            raise SystemExit("the crash did not happen")
        except Crash:
            pass
        result = train_model(config, tasks, listwise, folder / "resumed")
        if info.is_main:
            (folder / "resumed.json").write_text(json.dumps({k: v for k, v in result.items() if k != "quarantine"}))
    finally:
        cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
