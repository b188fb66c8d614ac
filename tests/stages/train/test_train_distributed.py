"""Multi-process training: the rank split, and two gloo processes under torchrun against one process.

Why 2 ranks × micro-batch 1 × accumulation 2 equals 1 process × micro-batch 2 × accumulation 2:
the loss of a micro-batch is the mean over its lists, accumulation scales each micro-step by
1/accum, and DDP averages the ranks' gradients. So both give
grad = 1/2 · Σ_micro 1/2 · Σ_{2 lists} ∇loss_list, and their global micro-batches hold the same
lists (4 lists, a multiple of the world size: no wrap-around padding). Only the float summation
order differs, hence the 1e-5 tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from stages.lib.errors import ConfigError
from stages.train import TrainConfig
from stages.train.distributed import SINGLE, DistInfo, all_gather_objects, all_reduce_sum, rank_split
from stages.train.loop import _check_resume, micro_batch_indices, rank_micro_batch, total_steps, train_model

from train_tables import COLOURS4, make_listwise, make_tasks

HERE = Path(__file__).parent
# synthetic reference log-probs: the loss needs them, their values only shift the implicit rewards
REF4 = [[-20.0, -25.0, -18.0, -30.0], [-21.0, -22.0, -23.0, -24.0], [-19.0, -26.0, -17.0, -28.0], [-20.5, -20.0, -25.0, -26.0]]


def _torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _losses(log: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in log.read_text().splitlines()]


# ---- the data split -------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n_lists", [1, 4, 5, 8])
@pytest.mark.parametrize("micro", [1, 2])
def test_rank_split_is_disjoint_covers_every_list_and_is_deterministic(world, n_lists, micro):
    cfg = TrainConfig(micro_batch_size=micro, seed=7)
    per_epoch = total_steps(n_lists, cfg, world)  # accumulation 1: one global micro-batch per step
    for epoch in range(2):
        seen: list[int] = []
        for g in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            shares = [rank_micro_batch(g, n_lists, cfg, DistInfo(r, world)) for r in range(world)]
            assert shares == [rank_micro_batch(g, n_lists, cfg, DistInfo(r, world)) for r in range(world)]
            assert len({len(s) for s in shares}) == 1 and len(shares[0]) >= 1  # equal, never empty
            assert sorted(sum(shares, [])) == sorted(micro_batch_indices(g, n_lists, cfg, world))  # disjoint split
            seen += sum(shares, [])
        # an epoch is every list once, wrapped around only to fill the last batch to a multiple of world
        assert set(seen) == set(range(n_lists)) and len(seen) == -(-n_lists // world) * world
    # one process: the plain per-epoch permutation, as before
    assert rank_micro_batch(0, n_lists, cfg) == micro_batch_indices(0, n_lists, cfg)[:micro]


def test_rank_split_takes_every_world_size_th_index():
    assert [rank_split([5, 1, 4, 2], r, 2) for r in range(2)] == [[5, 4], [1, 2]]
    assert rank_split([3, 0], 0, 1) == [3, 0]


def test_global_batch_scales_with_the_world_size():
    cfg = TrainConfig(micro_batch_size=2, gradient_accumulation_steps=2)
    assert [total_steps(16, cfg, w) for w in (1, 2, 4)] == [4, 2, 1]
    # 5 lists padded to 6 for 2 ranks: global micro-batches of 4 and 2 lists, accumulated into one step
    assert total_steps(5, cfg, 2) == 1 and total_steps(5, cfg.model_copy(update={"epochs": 3}), 2) == 3


def test_single_process_helpers_are_no_ops():
    assert SINGLE.is_main and not SINGLE.distributed
    assert all_reduce_sum([1.5, 2.0], SINGLE) == [1.5, 2.0]
    assert all_gather_objects({"a": 1}, SINGLE) == [{"a": 1}]


def test_resume_refuses_another_world_size(tmp_path):
    cfg = TrainConfig()
    saved = {"config": cfg.model_dump(mode="json"), "counters": {"step": 2, "data_digest": "d", "world_size": 2}}
    _check_resume(saved, cfg, "d", tmp_path / "step-00000002", world_size=2)
    with pytest.raises(ConfigError, match=r"written by 2 training process\(es\) and this run has 1"):
        _check_resume(saved, cfg, "d", tmp_path / "step-00000002", world_size=1)
    legacy = {"config": saved["config"], "counters": {"step": 2, "data_digest": "d"}}  # before multi-process
    _check_resume(legacy, cfg, "d", tmp_path / "step-00000002", world_size=1)


# ---- torchrun, two gloo processes ------------------------------------------------------------------


def _run_folder(run_dir: Path, tasks, listwise, overrides: list[str]) -> None:
    """A run folder whose ingest and reference stages are finished, with a config snapshot."""
    from pipeline.config import config_to_toml, load_config
    from pipeline.store import Manifest, RunStore

    store = RunStore(run_dir)
    for stage, table_name, table in (("ingest", "tasks", tasks), ("reference", "listwise", listwise)):
        store.commit_shard(Manifest(stage=stage, n_shards=1), 0, f"{stage}-fp", {table_name: table}, table_name, None, {}, [], 0.0)
    (run_dir / "config.toml").write_text(config_to_toml(load_config(None, overrides)))


def test_torchrun_two_processes_train_like_one_with_the_same_global_batch(tiny_model_dir, tmp_path, monkeypatch):
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.torchrun_executor import TorchrunExecutor

    for name, value in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        monkeypatch.setenv(name, value)
    tasks, listwise = make_tasks(COLOURS4), make_listwise(REF4, COLOURS4)
    run_dir = tmp_path / "run"
    settings = dict(model=str(tiny_model_dir), device="cpu", learning_rate=1e-3, beta=1.0, max_steps=4, save_every=100)
    overrides = [f"train.{k}={json.dumps(v)}" for k, v in settings.items()]
    _run_folder(run_dir, tasks, listwise, overrides + ["train.micro_batch_size=1", "train.gradient_accumulation_steps=2"])
    cfg = load_config(run_dir / "config.toml")

    # the runner runs the train shard under torchrun and commits it like any other shard
    (summary,) = run_pipeline(cfg, run_dir, stages=["train"], progress=False, executor=TorchrunExecutor(2))
    assert summary.shards_run == 1
    artifacts = run_dir / "train" / "artifacts"
    assert sorted(p.name for p in artifacts.iterdir()) == [".fingerprint", "checkpoints", "model", "train_log.jsonl"]
    assert not list((run_dir / "train").glob(".*.tmp-*"))  # the job folder is gone
    assert [json.loads(line)["step"] for line in (artifacts / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert json.loads((artifacts / "train_log.jsonl").read_text().splitlines()[0])["lists"] == 4  # summed over ranks
    from pipeline.store import RunStore

    record = RunStore(run_dir).read_manifest("train").shards[0]
    assert record.metrics["steps"] == 4 and record.artifacts == [str(artifacts / "model"), str(artifacts / "train_log.jsonl")]

    single = train_model(TrainConfig(**settings, micro_batch_size=2, gradient_accumulation_steps=2), tasks, listwise, tmp_path / "one")
    ddp, one, base = _weights(artifacts / "model"), _weights(Path(single["model_dir"])), _weights(tiny_model_dir)
    assert ddp.keys() == one.keys()
    assert max((one[k] - base[k]).abs().max().item() for k in one) > 1e-3  # training moved the weights
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], rtol=0, atol=1e-5)
    assert _losses(artifacts / "train_log.jsonl") == pytest.approx(_losses(Path(single["log_path"])), rel=1e-5)

    # committed with the runner's own fingerprint: a plain run now skips the train stage
    (again,) = run_pipeline(cfg, run_dir, stages=["train"], use_ray=False, progress=False)
    assert again.shards_skipped == 1 and again.shards_run == 0


def test_torchrun_resume_after_a_crash_equals_an_uninterrupted_run(tiny_model_dir, tmp_path):
    # lists of different lengths: each rank's dropout draws differ, so each rank must get its own RNG back
    longer = {
        "t-green": [("green", 1.0, "policy"), ("a small green square on white", 0.5, "ground_truth"), ("red", 0.0, "hallucination")],
        "t-white": [("white", 1.0, "policy"), ("it is a plain white picture", 0.6, "policy"), ("black", 0.1, "hallucination")],
    }
    ref = [row[: len(longer.get(tid, row))] for tid, row in zip(COLOURS4, REF4)]
    pq.write_table(make_tasks(COLOURS4), tmp_path / "tasks.parquet")
    pq.write_table(make_listwise(ref, COLOURS4, responses=longer), tmp_path / "listwise.parquet")
    config = TrainConfig(model=str(tiny_model_dir), device="cpu", learning_rate=1e-3, beta=1.0, max_steps=5, save_every=2,
                         lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.2)
    (tmp_path / "config.json").write_text(config.model_dump_json())

    proc = _torchrun(str(HERE / "ddp_worker.py"), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 5
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert _losses(tmp_path / "resumed" / "train_log.jsonl") == _losses(tmp_path / "straight" / "train_log.jsonl")
    saved = torch.load(tmp_path / "straight" / "checkpoints" / "step-00000005" / "checkpoint.pt", weights_only=True)
    assert saved["counters"]["world_size"] == 2 and len(saved["rank_rng"]) == 2
