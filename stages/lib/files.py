"""Atomic files and folders: readers see the old version or the whole new one, never a part.

The one implementation every writer of the project uses (run store shards and manifests, reports,
the demo corpus, model folders, checkpoints, the export). Temporaries are named ``.<name>.tmp-*``
beside their target, so :meth:`pipeline.store.RunStore.remove_stale_temporaries` (and a resume) can
find what a killed writer left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "TEMP_GLOB",
    "temp_path",
    "fsync_dir",
    "write_temp",
    "commit_temp",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_parquet_temp",
    "atomic_write_parquet",
    "atomic_folder",
    "file_sha256",
]

TEMP_GLOB = ".*.tmp-*"
"""Glob matching every temporary this module creates (files and folders)."""


def temp_path(path: Path) -> Path:
    """A fresh temporary sibling of ``path`` (``.<name>.tmp-<pid>-<random>``), not yet created."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (so a rename survives a power cut); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to fill a fresh temporary sibling of ``path``, fsync it and return it (not renamed).

    The first half of an atomic write, for a writer that is not the one deciding when the file
    counts (a Ray worker writes a shard, the driver renames it with :func:`commit_temp`). On any
    error the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "r+b") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit_temp(tmp: Path, path: Path) -> None:
    """Rename the finished temporary ``tmp`` onto ``path`` (the second half of an atomic write) and flush the folder."""
    try:
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(Path(path).parent)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` to fill a temporary sibling of ``path``, fsync it, then rename it onto ``path``.

    ``write`` may use any library that writes to a path (matplotlib, pyarrow, torch). On any error the
    temporary is removed and ``path`` is left as it was.
    """
    commit_temp(write_temp(Path(path), write), Path(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_parquet_temp(path: Path, table: Any) -> tuple[Path, str]:
    """Write the Arrow ``table`` to a temporary sibling of ``path`` (zstd, 1024-row groups), fsynced;
    return the temporary and the file's sha256. :func:`commit_temp` puts it in place."""
    import pyarrow.parquet as pq

    digest: list[str] = []

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1024)
        digest.append(file_sha256(tmp))

    return write_temp(Path(path), write), digest[0]


def atomic_write_parquet(path: Path, table: Any) -> str:
    """Write the Arrow ``table`` to ``path`` atomically (zstd, 1024-row groups); return the file's sha256."""
    tmp, digest = write_parquet_temp(Path(path), table)
    commit_temp(tmp, Path(path))
    return digest


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``out`` whole, on error it is removed.

    An interrupted writer leaves ``out`` as it was (the previous version, or nothing) plus a
    ``.<name>.tmp-*`` folder that :func:`remove_stale_temporaries`-style cleanup deletes.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_path(out)
    old = out.with_name(f".{out.name}.tmp-old-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            out.rename(old)
        try:
            staging.rename(out)
        except OSError:
            if old.exists():
                old.rename(out)  # put the previous version back
            raise
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
