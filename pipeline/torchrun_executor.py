"""Where shards run, third way: K processes started by ``torchrun`` on this machine (multi-GPU training).

For each shard the executor pickles the stage spec, its config and the :class:`ShardJob` into a job
folder, starts
``python -m torch.distributed.run --standalone --nproc-per-node K -m pipeline.torchrun_worker JOB``
and waits. Every process reads the shard's inputs and runs it through
:func:`pipeline.executor.execute_shard`, as every executor's worker does (the stage joins the process
group the launcher describes: see :func:`stages.train.distributed.init_distributed`); rank 0 alone
stages the outputs (:func:`pipeline.executor.stage_result`) and pickles its :class:`ShardDone`
back into the job folder, and the executor hands it to ``on_done``, so the runner commits the shard
exactly as it commits any other. A rank that fails pickles its exception there instead: a user error
(:class:`PipelineError`) is raised as is, anything else is retried up to ``max_retries`` times, then
reported with its shard.

The job folder is a temporary sibling of the shard's scratch folder (``.<name>.tmp-*``), removed
when the shard ends; the stage's resumable state (train checkpoints) lives in the scratch folder
itself, so a retried or re-run shard resumes from it. All processes run on this machine, so they see
the run folder the driver sees.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from pipeline.executor import ShardDone, ShardJob, _fail
from stages.base import StageConfig, StageSpec
from stages.lib.errors import PipelineError
from stages.lib.files import atomic_write_bytes, temp_path

__all__ = ["TorchrunExecutor", "JOB_FILE", "RESULT_FILE", "error_file"]

OnDone = Callable[[ShardJob, Any, float], None]

JOB_FILE = "job.pkl"
RESULT_FILE = "result.pkl"


def error_file(job_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` leaves the exception that ended it."""
    return job_dir / f"error-{rank:05d}.pkl"


def _written_at(path: Path) -> int:
    return path.stat().st_mtime_ns


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
                    done = self._run_job(spec, config, job)
                except PipelineError:
                    raise
                except Exception as exc:  # any shard failure is retried, then reported
                    failures[job.index] = exc
                    continue
                failures.pop(job.index, None)
                on_done(job, done, done.seconds)
                break
        if failures:
            raise _fail(spec, failures, max_retries + 1)

    def verify(self, expected: dict[str, str]) -> list[str]:
        """The files of ``expected`` (path -> sha256) whose bytes do not match (hashed here: one machine)."""
        from pipeline.shard_check import mismatched_files

        return mismatched_files(expected)

    def _run_job(self, spec: StageSpec, config: StageConfig, job: ShardJob) -> ShardDone:
        job_dir = temp_path(job.output.scratch_dir)
        try:
            job_dir.mkdir(parents=True)
            atomic_write_bytes(job_dir / JOB_FILE, pickle.dumps({"spec": spec, "config": config, "job": job}))
            code = subprocess.run(self.command(job_dir), env=os.environ.copy()).returncode
            return self._outcome(job_dir, code)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def _outcome(self, job_dir: Path, code: int) -> ShardDone:
        """Rank 0's :class:`ShardDone`, or the ranks' first exception raised here."""
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
        return pickle.loads((job_dir / RESULT_FILE).read_bytes())
