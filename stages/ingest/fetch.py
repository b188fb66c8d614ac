"""Read the raw bytes an image ref points to (a file, a Parquet row, a demo index), one ref at a time.

Parquet images are read one row group at a time and only the image column, so a shard holds at most
one row group of image bytes in memory besides its own output (records of a shard are in row order,
so each row group is read once).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas.quarantine import QuarantineReason
from stages.ingest.demo_corpus import render_demo_image
from stages.ingest.decode import read_image_file
from stages.ingest.rejected import Rejected
from stages.ingest.records import ImageKind

__all__ = ["ImageFetcher"]


class ImageFetcher:
    """Returns ``(bytes, name)`` for image refs; use as a context manager so Parquet files are closed."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._file: pq.ParquetFile | None = None
        self._file_path: str | None = None
        self._starts: list[int] = []
        self._group: tuple[int, str] | None = None
        self._column: pa.ChunkedArray | None = None
        self._readers = {
            ImageKind.FILE: self._read_file,
            ImageKind.PARQUET: self._read_parquet,
            ImageKind.DEMO: self._read_demo,
        }

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the open Parquet file and the cached row group."""
        if self._file is not None:
            self._file.close()
        self._file, self._file_path, self._group, self._column = None, None, None, None

    def fetch(self, ref: Mapping[str, Any]) -> tuple[bytes, str | None]:
        """Return the image bytes of ``ref`` and the name to keep in the image cell; raises :class:`Rejected`."""
        try:
            reader = self._readers[ImageKind(ref.get("kind"))]
        except ValueError:
            raise Rejected(QuarantineReason.MALFORMED_RECORD, f"unknown image ref kind {ref.get('kind')!r}") from None
        return reader(ref), ref.get("name")

    def _read_file(self, ref: Mapping[str, Any]) -> bytes:
        return read_image_file(Path(ref["path"]), max_bytes=self._max_bytes)

    def _read_demo(self, ref: Mapping[str, Any]) -> bytes:
        return render_demo_image(int(ref["seed"]), int(ref["index"]))

    def _read_parquet(self, ref: Mapping[str, Any]) -> bytes:
        path, row, column = ref["path"], int(ref["row"]), ref["column"]
        if path != self._file_path:
            self.close()
            try:
                self._file = pq.ParquetFile(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise Rejected(QuarantineReason.MISSING_IMAGE, f"cannot open Parquet file {path}: {exc}") from None
            self._file_path = path
            sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.metadata.num_row_groups)]
            self._starts = [0, *itertools.accumulate(sizes)][:-1]
        group = bisect.bisect_right(self._starts, row) - 1
        if group < 0 or row >= self._file.metadata.num_rows:
            raise Rejected(QuarantineReason.MISSING_IMAGE, f"{path} has no row {row} (it changed since planning)")
        if self._group != (group, column):
            self._column = self._file.read_row_group(group, columns=[column]).column(0)
            self._group = (group, column)
        cell = self._column[row - self._starts[group]].as_py()
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise Rejected(QuarantineReason.MISSING_IMAGE, f"{path} row {row} has no image bytes")
        if len(data) > self._max_bytes:
            message = f"{path} row {row} has a {len(data)}-byte image, over [ingest] max_bytes = {self._max_bytes}"
            raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, message)
        return data
