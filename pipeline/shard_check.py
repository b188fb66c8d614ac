"""Checking a shard file against the sha256 its manifest recorded, where the file is read.

A shard's files are hashed when they are written (:func:`stages.lib.files.write_parquet_temp`) and the
manifest records each file's sha256 (:attr:`pipeline.manifest.ShardRecord.hashes`). A worker reading a
shard as input reads the file's bytes once, hashes them and decodes the table from the same bytes, so
the check costs one sha256 pass over bytes that are read anyway (decoding costs more). A mismatch
raises :class:`ShardHashError`, which the executors pass through without retrying (the same bytes
would fail again) and the runner answers by redoing the shard that wrote the file
(:func:`pipeline.runner.run_pipeline`).

Nothing here runs in the driver during a run: the runner ships the expected hashes with a job's input
paths, and the files of shards no stage reads in a run (its final tables) are hashed by a worker task
(:meth:`pipeline.executor.RayExecutor.verify`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from stages.lib.errors import PipelineError
from stages.lib.files import file_sha256

__all__ = ["ShardHashError", "read_checked", "mismatched_files"]


class ShardHashError(PipelineError, RuntimeError):
    """A shard file's bytes differ from the sha256 its manifest recorded (same-size corruption included).

    ``path`` is the file as the reader named it (absolute in a worker). The runner redoes the shard
    that wrote it; the error reaches the user only if the redone file is damaged again.
    """

    def __init__(self, path: str, expected: str, actual: str):
        self.path, self.expected, self.actual = str(path), expected, actual
        super().__init__(
            f"shard file {self.path} does not match the sha256 its manifest recorded "
            f"(expected {expected[:12]}..., found {actual[:12]}...)"
        )

    def __reduce__(self):  # Ray pickles a worker's exception: rebuild it from its fields, not its message
        return (type(self), (self.path, self.expected, self.actual))


def read_checked(path: Path, expected: str | None, columns: list[str] | None = None) -> pa.Table:
    """Read the Parquet file ``path``; when ``expected`` (a hex sha256) is given, first check the bytes
    against it and raise :class:`ShardHashError` on a mismatch. The file is read from disk once."""
    if expected is None:
        return pq.read_table(path, columns=columns)
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ShardHashError(str(path), expected, actual)
    return pq.read_table(pa.BufferReader(data), columns=columns)


def mismatched_files(expected: dict[str, str]) -> list[str]:
    """The files of ``expected`` (path -> hex sha256) that are missing or whose bytes hash to something else."""
    bad = []
    for path, sha in sorted(expected.items()):
        try:
            if file_sha256(Path(path)) != sha:
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad
