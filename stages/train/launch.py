"""``python -m stages.train``: train a run's model in this process, or in K processes under torchrun / accelerate.

    torchrun --nproc_per_node=4 -m stages.train --run-dir runs/demo [--config pipeline.toml] [--set train.x=y]
    accelerate launch --multi_gpu --num_processes 4 -m stages.train --run-dir runs/demo

The run folder must hold finished upstream stages (``perpo-pipeline run --run-dir runs/demo``
through rank or reference). The config is the run's snapshot ``<run-dir>/config.toml`` unless
``--config`` names another file. The inputs are the ones ``perpo-pipeline run`` would give the train
stage (tasks from ingest; listwise from reference when it is enabled, else rank), and the outputs go
where it would put them (``<run-dir>/train/artifacts``: model/, checkpoints/, train_log.jsonl);
checkpoints resume under the same number of processes (``perpo-pipeline run`` is one). Like ``perpo-pipeline run``, it writes the resolved
config (with ``--set``) to ``<run-dir>/config.toml`` and records the finished training in the train
manifest, so a later ``perpo-pipeline run`` with the same settings skips the train stage.

User mistakes (no run folder, an unfinished upstream stage, a bad config) print one line on stderr
and exit with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from stages.lib.errors import ConfigError, PipelineError

__all__ = ["TrainInputs", "resolve_inputs", "main"]

STAGE = "train"


@dataclass
class TrainInputs:
    """The train stage's input tables read from a run folder, and the fingerprint the runner gives that shard."""

    tables: dict[str, pa.Table]
    fingerprint: str
    producers: dict[str, str]
    input_hashes: list[str]
    scratch_key: str


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.train",
        description="Train the policy on a run folder's ranked lists; launch under torchrun or accelerate for several GPUs.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="Run folder written by `perpo-pipeline run`.")
    parser.add_argument("--config", "-c", type=Path, help="Pipeline config file (default: <run-dir>/config.toml).")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="Override a config value: section.key=value (repeatable)."
    )
    parser.add_argument("--out-dir", type=Path, help="Where to write model/, checkpoints/ and train_log.jsonl "
                        "(default: <run-dir>/train/artifacts, the train stage's own folder).")
    return parser


def resolve_inputs(store: Any, cfg: Any) -> TrainInputs:
    """Read the tables the train stage reads, from the stages ``perpo-pipeline run`` would take them from.

    Raises :class:`ConfigError` when no enabled stage writes a table or its stage has not finished.
    """
    from pipeline.config import section_for_fingerprint
    from pipeline.fingerprint import shard_fingerprint
    from pipeline.runner import check_chain, fan_in_hashes, producers, scratch_key
    from stages import registry

    chain = [spec for spec in registry.stage_specs() if spec.name == STAGE or getattr(cfg, spec.name).enabled]
    check_chain(chain)
    sources = producers(chain)[STAGE]
    manifests = {table: store.read_manifest(spec.name) for table, spec in sources.items()}
    for table, manifest in manifests.items():
        if not manifest.complete:
            stage = sources[table].name
            raise ConfigError(
                f"the train stage needs table {table!r} from stage {stage}, which has not finished in "
                f"{store.run_dir}; run `perpo-pipeline run --run-dir {store.run_dir}` up to {stage} first"
            )
    tables = {table: store.read_table(spec.name, table, spec.writes[0]) for table, spec in sources.items()}
    # the runner's fan-in fingerprint, so a later `perpo-pipeline run` skips this training
    hashes = fan_in_hashes(manifests)
    section = section_for_fingerprint(getattr(cfg, STAGE))
    return TrainInputs(
        tables=tables,
        fingerprint=shard_fingerprint(STAGE, section, hashes),
        producers={t: s.name for t, s in sources.items()},
        input_hashes=hashes,
        scratch_key=scratch_key(registry.get_stage(STAGE), section, hashes),
    )


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from pipeline.config import load_config
    from pipeline.store import RunStore

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: no such folder; run `perpo-pipeline run --run-dir {run_dir}` first")
    config = args.config or run_dir / "config.toml"
    if args.config is None and not config.is_file():
        raise ConfigError(f"{run_dir} has no config.toml (`perpo-pipeline run` writes it); pass --config pipeline.toml")
    return load_config(config, args.overrides), RunStore(run_dir)


def _commit(store: Any, inputs: TrainInputs, result: dict[str, Any], seconds: float, cfg_train: Any) -> None:
    """Record the finished training in the train manifest exactly as the runner would."""
    from data_schemas import SCHEMA_VERSION, validate_table
    from pipeline.store import Manifest
    from stages.train.stage import shard_result

    shard = shard_result(result, cfg_train)
    manifest = store.read_manifest(STAGE)
    if manifest.schema_version != SCHEMA_VERSION:
        manifest = Manifest(stage=STAGE)
    manifest.n_shards = 1
    quarantine = None
    if shard.quarantine:
        quarantine = validate_table([{"stage": STAGE, "shard": 0, **row} for row in shard.quarantine], "quarantine")
    store.commit_shard(
        manifest, 0, inputs.fingerprint, shard.tables, "model", quarantine, shard.metrics, shard.artifacts, seconds,
        inputs.input_hashes,
    )
    store.merge_quarantine(STAGE)


def _hold_run_lock(stack: contextlib.ExitStack, store: Any, info: Any) -> None:
    """Rank 0 takes the run folder's lock; if it cannot, every rank raises the same error (none is left waiting)."""
    from stages.train.distributed import all_gather_objects

    error = None
    if info.is_main:
        try:
            stack.enter_context(store.lock())
        except PipelineError as exc:
            error = str(exc)
    errors = [e for e in all_gather_objects(error, info) if e]
    if errors:
        raise ConfigError(errors[0])


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from stages.train.distributed import barrier, init_distributed
    from stages.train.loop import train_model

    cfg, store = _load(args)
    inputs = resolve_inputs(store, cfg)
    own_folder = store.scratch_dir(STAGE, 0, fan_in=True)
    out_dir = args.out_dir or own_folder
    runner_folder = Path(out_dir).resolve() == own_folder.resolve()
    info = init_distributed(cfg.train.device)
    with contextlib.ExitStack() as stack:
        _hold_run_lock(stack, store, info)
        if info.is_main and runner_folder:
            from pipeline.config import config_to_toml
            from stages.lib.files import atomic_write_bytes

            atomic_write_bytes(store.run_dir / "config.toml", config_to_toml(cfg).encode())  # as `run` does
            store.prepare_scratch(own_folder, inputs.scratch_key)  # another config's checkpoints must not resume
        barrier(info)
        started = time.perf_counter()
        from stages.train.stage import train_split

        result = train_model(cfg.train, train_split(inputs.tables["tasks"]), inputs.tables["listwise"], out_dir)
        if info.is_main and runner_folder:
            _commit(store, inputs, result, time.perf_counter() - started, cfg.train)
        barrier(info)
    if info.is_main:
        print(
            f"trained {result['steps']} step(s) on {result['lists']} lists from {inputs.producers['listwise']} "
            f"with {info.world_size} process(es): {result['model_dir']} (log {result['log_path']})"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, train, return the exit code (0; 2 with one line on stderr for a user mistake)."""
    import os

    from stages.train.distributed import cleanup

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no per-rank "Loading weights" bars
    args = _parser().parse_args(argv)
    try:
        _train(args)
        return 0
    except PipelineError as exc:
        if os.environ.get("RANK", "0") == "0":  # every rank fails alike; one line is enough
            print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        cleanup()
