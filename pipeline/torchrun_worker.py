"""One torchrun process of a :class:`~pipeline.torchrun_executor.TorchrunExecutor` job.

    python -m torch.distributed.run --standalone --nproc-per-node K -m pipeline.torchrun_worker JOB_DIR

Reads the job the executor wrote, loads the stage's resources, reads the shard's inputs and runs it
through :func:`pipeline.executor.execute_shard`, as every executor's worker does
(:func:`pipeline.executor.run_job`); rank 0 alone stages the outputs
(:func:`pipeline.executor.stage_result`) and writes its :class:`ShardDone` to
``JOB_DIR/result.pkl``. A rank whose shard raises writes the exception to
``JOB_DIR/error-<rank>.pkl`` and exits 1 (torchrun then stops the other ranks). Nothing is
committed here: that is the runner's job.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from pipeline.executor import execute_shard, stage_result
from pipeline.torchrun_executor import JOB_FILE, RESULT_FILE, error_file
from stages.lib.errors import first_line
from stages.lib.files import atomic_write_bytes

__all__ = ["main", "pickled_exception"]


def pickled_exception(exc: BaseException) -> bytes:
    """``exc`` pickled, or a RuntimeError with its first line if it does not survive a pickle round trip."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # an exception with odd constructor arguments still reports its message
        return pickle.dumps(RuntimeError(first_line(exc)))


def _leave_process_group() -> None:
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Run this rank's part of the job in ``argv[0]``; return the exit code (0, or 1 after recording the error)."""
    args = sys.argv[1:] if argv is None else argv
    job_dir = Path(args[0])
    rank = int(os.environ.get("RANK", "0"))
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no per-rank "Loading weights" bars
    try:
        payload = pickle.loads((job_dir / JOB_FILE).read_bytes())
        spec, config, job = payload["spec"], payload["config"], payload["job"]
        resources = spec.setup(config) if spec.setup else None
        result, seconds = execute_shard(spec, config, job.load_inputs(), job.output, resources)
        if rank == 0:  # the other ranks' results are the same shard seen from their share of the work
            atomic_write_bytes(job_dir / RESULT_FILE, pickle.dumps(stage_result(spec, job, result, seconds)))
        return 0
    except BaseException as exc:  # every failure goes back to the executor, which decides
        atomic_write_bytes(error_file(job_dir, rank), pickled_exception(exc))
        return 1
    finally:
        _leave_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
