"""The viewer's image files: a small thumbnail for the index and a display copy for the task page.

Files are named by the image's sha256, so a viewer rewritten over an earlier one links the files it
already has instead of decoding again (a second `run` on a 100k-task corpus redoes no image). An
image that cannot be decoded gets no file and a one-line reason, which the page shows in its place.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from stages.lib.errors import first_line

__all__ = ["THUMB_SIDE", "DISPLAY_SIDE", "ImageRefs", "ImageWriter"]

THUMB_SIDE = 96  # px, longest side of an index thumbnail
DISPLAY_SIDE = 768  # px, longest side of a task page image; smaller browser-readable files are copied as they are
_BROWSER_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
_MAX_COPY_BYTES = 2 * 1024**2


@dataclass(frozen=True)
class ImageRefs:
    """Where one image went, relative to the viewer folder; ``error`` says why there is none."""

    thumb: str | None = None
    display: str | None = None
    error: str | None = None


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class ImageWriter:
    """Writes thumbnails and display images under ``root`` (``thumb/`` and ``img/``), reusing ``previous``."""

    def __init__(self, root: Path, previous: Path | None = None):
        self.root = Path(root)
        self.previous = Path(previous) if previous is not None and Path(previous).is_dir() else None
        self.written = 0
        self.reused = 0

    def _reuse(self, rel: str) -> bool:
        if self.previous is None:
            return False
        old = self.previous / rel
        if not old.is_file():
            return False
        _link_or_copy(old, self.root / rel)
        self.reused += 1
        return True

    def _existing(self, folder: str, name: str) -> str | None:
        """A file already here or in the previous viewer for ``name`` (any extension), linked here."""
        for ext in ("jpg", "png", "webp", "gif"):
            rel = f"{folder}/{name[:2]}/{name}.{ext}"
            if (self.root / rel).is_file() or self._reuse(rel):
                return rel
        return None

    def add(self, data: bytes | None, key: str | None = None) -> ImageRefs:
        """Write the thumbnail and display copy of the encoded image ``data``; ``key`` names the files
        (default: the bytes' sha256). Never raises for bad image data: the refs then carry ``error``."""
        if not data:
            return ImageRefs(error="the task has no image bytes")
        key = key or hashlib.sha256(data).hexdigest()
        thumb, display = self._existing("thumb", key), self._existing("img", key)
        if thumb and display:
            return ImageRefs(thumb, display)
        from PIL import Image

        try:
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt == "JPEG":
                img.draft("RGB", (DISPLAY_SIDE, DISPLAY_SIDE))
            img.load()
            rgb = img.convert("RGB")
        except Exception as exc:  # any decoder failure is a property of the data, shown on the page
            return ImageRefs(error=f"image does not decode: {first_line(exc)}")
        if display is None:
            ext = _BROWSER_FORMATS.get(fmt or "")
            if ext and max(img.size) <= DISPLAY_SIDE and len(data) <= _MAX_COPY_BYTES:
                display = self._write(f"img/{key[:2]}/{key}.{ext}", data)
            else:
                big = rgb.copy()
                big.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
                display = self._write(f"img/{key[:2]}/{key}.jpg", _jpeg(big, 88))
        if thumb is None:
            small = rgb.copy()
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            thumb = self._write(f"thumb/{key[:2]}/{key}.jpg", _jpeg(small, 80))
        return ImageRefs(thumb, display)

    def add_file(self, path: Path) -> ImageRefs:
        """Like :meth:`add` for an image file (a kept distorted image); a missing file is an error ref."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return ImageRefs(error=f"image file not readable: {first_line(exc, with_type=False)}")
        return self.add(data)

    def _write(self, rel: str, data: bytes) -> str:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)  # the whole viewer folder is renamed into place at the end (atomic)
        self.written += 1
        return rel


def _jpeg(img, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()
