"""Decode, check and normalize one image into the bytes stored in the ``tasks`` table.

Policy (what ends up in the ``{bytes, path}`` cell):
- Every image is opened with a pixel cap read from the header *before* decoding, then fully decoded
  (``Image.load()``), so a truncated or damaged file is caught at ingest, not at training time.
- A JPEG or PNG that is already RGB and has no EXIF rotation is stored **byte for byte** (no
  generation loss, and the fastest path: no encoder runs).
- Anything else (EXIF rotation, grayscale/CMYK/alpha/16-bit modes, WEBP/GIF/BMP/TIFF/MPO) is
  converted to upright RGB and re-encoded: JPEG sources as JPEG (``jpeg_quality``; PNG would bloat a
  lossy source 5-10x without restoring anything), every other source as lossless PNG. Re-encoding drops
  the EXIF block, so the stored image needs no orientation handling downstream.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from data_schemas.quarantine import QuarantineReason
from stages.ingest.rejected import Rejected

__all__ = ["StoredImage", "read_image_file", "normalize_image", "ACCEPTED_FORMATS"]

# Decoders we let PIL try; anything else is "not an image" (PIL also knows exotic formats we do not want).
# JPEG includes MPO (multi-picture camera JPEGs), which PIL opens through the JPEG plugin.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_KEPT_AS_IS = frozenset({"JPEG", "PNG"})
_LOSSY = frozenset({"JPEG", "MPO"})
_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",)}
_ORIENTATION_TAG = ExifTags.Base.Orientation


@dataclass(frozen=True)
class StoredImage:
    """An image as stored in ``tasks``: the bytes, their sha256, the upright size and how it got there."""

    data: bytes
    sha256: str
    width: int
    height: int
    path: str | None  # name kept in the cell (suffix follows the stored format)
    raw_size: tuple[int, int]  # (width, height) of the pixels in the file, before EXIF rotation
    orientation: int  # EXIF orientation that was applied (1: none)
    source_format: str
    stored_format: str
    reencoded: bool


def read_image_file(path: Path, *, max_bytes: int) -> bytes:
    """Return the bytes of ``path``, reading at most ``max_bytes + 1`` of them; a missing or unreadable file
    raises ``Rejected(missing_image)``, a zero-byte file ``Rejected(empty_image)``, a file over ``max_bytes``
    (or one that memory cannot hold) ``Rejected(image_too_large)``."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except MemoryError:
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, f"not enough memory to read image file {path}") from None
    except FileNotFoundError:
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"image file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, I/O error
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"cannot read image file {path}: {exc.strerror or exc}") from None
    if not data:
        raise Rejected(QuarantineReason.EMPTY_IMAGE, f"image file is empty (0 bytes): {path}")
    if len(data) > max_bytes:
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, f"image file {path} is over [ingest] max_bytes = {max_bytes}")
    return data


@contextmanager
def _strict_decoding(max_pixels: int) -> Iterator[None]:
    """PIL's bomb limit and truncation switch are process globals; pin them for the duration of one decode
    (ingest decodes one image at a time per process) so another library's setting cannot loosen ours."""
    old_limit, old_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    # PIL raises DecompressionBombError above 2x the limit and warns above 1x; our own header check
    # below rejects everything above 1x, so the warning is noise.
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old_limit, old_truncated


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block: ignore the orientation rather than reject the picture
        return 1
    return value if 1 <= value <= 8 else 1


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I;16"):  # 16-bit grayscale: PIL's convert would clip, scale to 8 bits instead
        import numpy as np

        arr = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB")


def _encode(img: Image.Image, fmt: str, jpeg_quality: int, icc_profile: bytes | None) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=jpeg_quality, **extra)
    else:
        img.save(buf, format="PNG", **extra)
    return buf.getvalue()


def _stored_name(name: str | None, fmt: str, reencoded: bool) -> str | None:
    """Keep the cell's name, but make its suffix tell the truth about re-encoded bytes."""
    if not name or not reencoded:
        return name
    pure = PurePosixPath(name)
    suffixes = _SUFFIXES[fmt]
    return name if pure.suffix.lower() in suffixes else str(pure.with_suffix(suffixes[0]))


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        message = f"not a recognized image ({len(data)} bytes; accepted: {', '.join(ACCEPTED_FORMATS)})"
        raise Rejected(QuarantineReason.NOT_AN_IMAGE, message) from None
    except Image.DecompressionBombError as exc:
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, f"{exc} (limit: [ingest] max_pixels = {max_pixels})") from None
    except MemoryError:
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, "not enough memory to read the image header") from None
    except Exception as exc:  # untrusted bytes: a plugin may raise anything on a damaged header
        raise Rejected(QuarantineReason.CORRUPT_IMAGE, f"cannot read image header: {type(exc).__name__}: {exc}") from None


def _load(img: Image.Image, max_pixels: int) -> None:
    """Check the header's size against the cap, then decode every pixel."""
    width, height = img.size
    if width < 1 or height < 1:
        raise Rejected(QuarantineReason.CORRUPT_IMAGE, f"image header declares size {width}x{height}")
    if width * height > max_pixels:
        message = f"image is {width}x{height} = {width * height} pixels, over [ingest] max_pixels = {max_pixels}"
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, message)
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, str(exc)) from None
    except MemoryError:
        message = f"not enough memory to decode the {width}x{height} image (lower [ingest] max_pixels)"
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, message) from None
    except Exception as exc:  # truncated JPEG (OSError), broken PNG chunk (SyntaxError), plugin bugs
        raise Rejected(QuarantineReason.CORRUPT_IMAGE, f"image fails to decode: {type(exc).__name__}: {exc}") from None


def normalize_image(data: bytes, *, max_pixels: int, jpeg_quality: int = 95, name: str | None = None) -> StoredImage:
    """Decode ``data`` fully and return it as a :class:`StoredImage` (upright RGB JPEG/PNG).

    Raises :class:`Rejected` with ``empty_image``, ``not_an_image``, ``image_too_large`` (width x height over
    ``max_pixels``, checked from the header before any pixel is decoded) or ``corrupt_image`` (truncated or
    damaged data). Never raises anything else for bad bytes.
    """
    if not data:
        raise Rejected(QuarantineReason.EMPTY_IMAGE, "image has 0 bytes")
    with _strict_decoding(max_pixels), _open(data, max_pixels) as img:
        _load(img, max_pixels)
        source_format = img.format or "UNKNOWN"
        orientation = _orientation(img)
        if source_format in _KEPT_AS_IS and img.mode == "RGB" and orientation == 1:
            out, stored_format, data_out = img, source_format, data
        else:
            out = _to_rgb(ImageOps.exif_transpose(img) if orientation != 1 else img)
            stored_format = "JPEG" if source_format in _LOSSY else "PNG"
            data_out = _encode(out, stored_format, jpeg_quality, img.info.get("icc_profile"))
        reencoded = data_out is not data
        return StoredImage(
            data=data_out,
            sha256=hashlib.sha256(data_out).hexdigest(),
            width=out.width,
            height=out.height,
            path=_stored_name(name, stored_format, reencoded),
            raw_size=img.size,
            orientation=orientation,
            source_format=source_format,
            stored_format=stored_format,
            reencoded=reencoded,
        )
