"""Where shards run, third way: K processes started by ``torchrun`` on this machine (multi-GPU training).

For each shard the executor writes a job folder (the stage spec, its config and the shard's
:class:`ShardOutput` pickled, the input tables as Arrow IPC files), starts
``python -m torch.distributed.run --standalone --nproc-per-node K -m pipeline.torchrun_worker JOB``
and waits. Every process runs the shard through :func:`pipeline.executor.execute_shard`, the same
function the local and Ray executors call (the stage joins the process group the launcher
describes: see :func:`stages.train.distributed.init_distributed`); rank 0 pickles its
:class:`ShardResult` back into the job folder and the executor hands it to ``on_done``, so the
runner validates and commits the shard exactly as it commits any other. A rank that fails pickles
its exception there instead: a user error (:class:`PipelineError`) is raised as is, anything else
is retried up to ``max_retries`` times, then reported with its shard.

The job folder is a temporary sibling of the shard's scratch folder (``.<name>.tmp-*``), removed
when the shard ends; the stage's resumable state (train checkpoints) lives in the scratch folder
itself, so a retried or re-run shard resumes from it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pyarrow as pa

from pipeline.executor import ShardJob, _fail
from stages.base import ShardResult, StageConfig, StageSpec
from stages.lib.errors import PipelineError
from stages.lib.files import atomic_write_bytes, temp_path

__all__ = ["TorchrunExecutor", "JOB_FILE", "RESULT_FILE", "TABLES_DIR", "error_file", "write_tables", "read_tables"]

OnDone = Callable[[ShardJob, ShardResult, float], None]

JOB_FILE = "job.pkl"
RESULT_FILE = "result.pkl"
TABLES_DIR = "tables"


def error_file(job_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` leaves the exception that ended it."""
    return job_dir / f"error-{rank:05d}.pkl"


def write_tables(folder: Path, tables: dict[str, pa.Table]) -> None:
    """Write each table as an Arrow IPC file ``<name>.arrow`` (schema and metadata kept exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        with pa.OSFile(str(folder / f"{name}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


def read_tables(folder: Path, names: list[str]) -> dict[str, pa.Table]:
    """Read back what :func:`write_tables` wrote (memory-mapped: K processes share one copy)."""
    return {name: pa.ipc.open_file(pa.memory_map(str(folder / f"{name}.arrow"))).read_all() for name in names}


class TorchrunExecutor:
    """Runs each shard in ``nproc`` processes under torchrun (one machine, ``--standalone`` rendezvous).

    ``python`` is the interpreter the processes run (default: this one). The processes inherit this
    process's environment, standard output and standard error.
    """

    def __init__(self, nproc: int, python: str | None = None) -> None:
        if nproc < 1:
            raise ValueError(f"nproc must be >= 1, got {nproc}")
        self.nproc = nproc
        self.python = python or sys.executable

    def command(self, job_dir: Path) -> list[str]:
        """The torchrun command line for one job folder."""
        return [
            self.python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.nproc}",
            "-m", "pipeline.torchrun_worker", str(job_dir),
        ]

    def run(self, spec: StageSpec, config: StageConfig, jobs: list[ShardJob], on_done: OnDone, max_retries: int) -> None:
        """Run every job under torchrun; raise :class:`StageFailedError` after the others finished if any still fails."""
        failures: dict[int, BaseException] = {}
        for job in jobs:
            for _attempt in range(max_retries + 1):
                try:
                    result, seconds = self._run_job(spec, config, job)
                except PipelineError:
                    raise
                except Exception as exc:  # any shard failure is retried, then reported
                    failures[job.index] = exc
                    continue
                failures.pop(job.index, None)
                on_done(job, result, seconds)
                break
        if failures:
            raise _fail(spec, failures, max_retries + 1)

    def _run_job(self, spec: StageSpec, config: StageConfig, job: ShardJob) -> tuple[ShardResult, float]:
        tables = job.load_inputs()
        job_dir = temp_path(job.output.scratch_dir)
        try:
            write_tables(job_dir / TABLES_DIR, tables)
            payload = {"spec": spec, "config": config, "output": job.output, "tables": sorted(tables)}
            atomic_write_bytes(job_dir / JOB_FILE, pickle.dumps(payload))
            code = subprocess.run(self.command(job_dir), env=os.environ.copy()).returncode
            return self._outcome(job_dir, code)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def _outcome(self, job_dir: Path, code: int) -> tuple[ShardResult, float]:
        """Rank 0's (result, seconds), or the lowest rank's exception raised here."""
        errors = [pickle.loads(path.read_bytes()) for path in sorted(job_dir.glob("error-*.pkl"), key=_written_at)]
        if errors:
            # a user error first; else the first written: the ranks that fail after it mostly report
            # only that their peer left (a broken collective)
            raise next((e for e in errors if isinstance(e, PipelineError)), errors[0])
        if code != 0 or not (job_dir / RESULT_FILE).is_file():
            raise RuntimeError(
                f"torchrun with {self.nproc} process(es) exited with code {code} and no result "
                "(a process was killed: out of memory, a signal?); see its output above"
            )
        result, seconds = pickle.loads((job_dir / RESULT_FILE).read_bytes())
        return result, seconds


def _written_at(path: Path) -> int:
    return path.stat().st_mtime_ns
