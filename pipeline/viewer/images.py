"""The viewer's images: a small thumbnail for the index and a display copy for the task page, as data URIs.

Images travel inside the data files that show them (thumbnails in the index's row pages, display
copies in the task chunks) rather than as one file each: a run of 100k tasks then writes a few
thousand files instead of 200k, and a page still loads only the images of what it shows. A display
copy is the original bytes when the browser reads the format and the image is small enough, so it
costs no decoding; thumbnails of an earlier viewer are reused by image hash. An image that cannot be
decoded gets no picture and a one-line reason, which the page shows in its place.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

from stages.lib.errors import first_line

__all__ = ["THUMB_SIDE", "DISPLAY_SIDE", "ImageRefs", "ImageEncoder"]

THUMB_SIDE = 96  # px, longest side of an index thumbnail
DISPLAY_SIDE = 768  # px, longest side of a task page image; smaller browser-readable images are kept as they are
_BROWSER_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_MAX_RAW_BYTES = 1024**2


@dataclass(frozen=True)
class ImageRefs:
    """One image as the pages use it (``data:`` URIs); ``error`` says why there is none."""

    thumb: str | None = None
    display: str | None = None
    error: str | None = None


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _jpeg(img, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


class ImageEncoder:
    """Turns encoded images into thumbnail and display data URIs; ``thumbs`` holds known thumbnails by key."""

    def __init__(self, thumbs: dict[str, str] | None = None):
        self.thumbs = dict(thumbs or {})
        self.encoded = 0  # images decoded here
        self.reused = 0  # thumbnails taken from an earlier viewer

    def add(self, data: bytes | None, key: str | None = None) -> ImageRefs:
        """Return the refs of the encoded image ``data``; ``key`` (default: its sha256) names it for reuse.
        Never raises for bad image data: the refs then carry ``error``."""
        from PIL import Image

        if not data:
            return ImageRefs(error="the task has no image bytes")
        key = key or hashlib.sha256(data).hexdigest()
        try:
            img = Image.open(io.BytesIO(data))  # reads the header only
            mime = _BROWSER_FORMATS.get(img.format or "")
            raw = mime is not None and max(img.size) <= DISPLAY_SIDE and len(data) <= _MAX_RAW_BYTES
            if raw and key in self.thumbs:
                self.reused += 1
                return ImageRefs(self.thumbs[key], _uri(mime, data))
            if img.format == "JPEG":  # decode at the smallest scale that still covers what is made from it
                img.draft("RGB", (DISPLAY_SIDE, DISPLAY_SIDE) if not raw else (THUMB_SIDE, THUMB_SIDE))
            img.load()
            rgb = img.convert("RGB")
        except Exception as exc:  # any decoder failure is a property of the data, shown on the page
            return ImageRefs(error=f"image does not decode: {first_line(exc)}")
        self.encoded += 1
        if raw:
            display = _uri(mime, data)
        else:
            big = rgb.copy()
            big.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
            display = _uri("image/jpeg", _jpeg(big, 88))
        small = rgb.copy()
        small.thumbnail((THUMB_SIDE, THUMB_SIDE))
        thumb = _uri("image/jpeg", _jpeg(small, 80))
        self.thumbs[key] = thumb
        return ImageRefs(thumb, display)

    def add_file(self, path) -> ImageRefs:
        """Like :meth:`add` for an image file (a kept distorted image); a missing file is an error ref."""
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            return ImageRefs(error=f"image file not readable: {first_line(exc, with_type=False)}")
        return self.add(data)
