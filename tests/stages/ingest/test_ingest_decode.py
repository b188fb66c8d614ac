"""Image decoding, checks and normalization (stages/ingest/decode.py)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageDraw


from data_schemas.quarantine import QuarantineReason
from stages.ingest.decode import normalize_image, read_image_file
from stages.lib.boxes import orient_box
from stages.ingest.rejected import Rejected

CAP = 10_000_000


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_upright_rgb_png_and_jpeg_are_stored_byte_for_byte(image_bytes, fmt):
    data = image_bytes(fmt=fmt, size=(40, 30))
    out = normalize_image(data, max_pixels=CAP, name="a/b.img")
    assert out.data == data and not out.reencoded
    assert (out.width, out.height) == (40, 30) and out.stored_format == fmt
    assert out.path == "a/b.img"  # kept bytes keep their name
    assert len(out.sha256) == 64


@pytest.mark.parametrize(
    ("fmt", "mode", "color", "stored"),
    [
        ("PNG", "RGBA", (10, 20, 30, 0), "PNG"),  # transparent -> white background
        ("PNG", "L", 128, "PNG"),
        ("WEBP", "RGB", (10, 200, 10), "PNG"),
        ("BMP", "RGB", (10, 200, 10), "PNG"),
        ("JPEG", "L", 100, "JPEG"),  # lossy source stays JPEG
        ("JPEG", "CMYK", (0, 255, 255, 0), "JPEG"),
    ],
)
def test_other_modes_and_formats_become_rgb_and_are_reencoded(image_bytes, fmt, mode, color, stored):
    out = normalize_image(image_bytes(fmt=fmt, mode=mode, color=color), max_pixels=CAP, name="x.webp")
    img = _decode(out.data)
    assert out.reencoded and out.stored_format == stored == img.format
    assert img.mode == "RGB"
    assert out.path == ("x.jpg" if stored == "JPEG" else "x.png")
    if mode == "RGBA":
        assert img.getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_grayscale_is_scaled_not_clipped():
    img = Image.new("I;16", (8, 8), 0x8000)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = normalize_image(buf.getvalue(), max_pixels=CAP)
    assert _decode(out.data).getpixel((0, 0)) == (128, 128, 128)


def _marked(size: tuple[int, int], box: tuple[int, int, int, int], orientation: int) -> bytes:
    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_orient_box_follows_it(orientation):
    raw_size, box = (40, 30), (5, 3, 15, 9)
    out = normalize_image(_marked(raw_size, box, orientation), max_pixels=CAP)
    upright = _decode(out.data).convert("L")
    expected_size = raw_size if orientation <= 4 else raw_size[::-1]
    assert (out.width, out.height) == upright.size == expected_size
    assert out.orientation == orientation and out.raw_size == raw_size
    assert out.reencoded == (orientation != 1)
    assert "exif" not in _decode(out.data).info or orientation == 1  # no second rotation downstream
    dark = upright.point(lambda v: 255 if v < 128 else 0).getbbox()
    assert list(dark) == orient_box(list(box), orientation, raw_size)


def test_jpeg_with_exif_rotation_is_rotated(image_bytes):
    data = image_bytes(fmt="JPEG", size=(64, 32), orientation=6)
    out = normalize_image(data, max_pixels=CAP)
    assert (out.width, out.height) == (32, 64) and out.stored_format == "JPEG" and out.reencoded


def test_zero_bytes_are_empty_image():
    with pytest.raises(Rejected) as err:
        normalize_image(b"", max_pixels=CAP)
    assert err.value.reason == QuarantineReason.EMPTY_IMAGE


@pytest.mark.parametrize("data", [b"hello, this is text", b"%PDF-1.4\n" + b"0" * 100, bytes(range(256))])
def test_bytes_that_are_not_an_image(data):
    with pytest.raises(Rejected, match="not a recognized image") as err:
        normalize_image(data, max_pixels=CAP)
    assert err.value.reason == QuarantineReason.NOT_AN_IMAGE


@pytest.mark.parametrize("keep", [0.6, 0.05])  # cut in the scan data; cut in the header
def test_truncated_jpeg_is_corrupt(keep):
    noise = Image.frombytes("RGB", (200, 150), bytes((i * 7919) % 251 for i in range(200 * 150 * 3)))
    buf = io.BytesIO()
    noise.save(buf, format="JPEG")
    data = buf.getvalue()
    with pytest.raises(Rejected, match="fails to decode|cannot read image header") as err:
        normalize_image(data[: int(len(data) * keep)], max_pixels=CAP)
    assert err.value.reason == QuarantineReason.CORRUPT_IMAGE


def test_image_over_the_pixel_cap(image_bytes):
    with pytest.raises(Rejected, match="max_pixels = 1000") as err:
        normalize_image(image_bytes(size=(40, 30)), max_pixels=1000)
    assert err.value.reason == QuarantineReason.IMAGE_TOO_LARGE


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is tiny (a decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [5_000, 100_000])  # over our cap; far over PIL's own bomb limit too
def test_size_is_checked_from_the_header_before_decoding(side):
    with pytest.raises(Rejected) as err:
        normalize_image(_png_with_declared_size(side, side), max_pixels=1_000_000)
    assert err.value.reason == QuarantineReason.IMAGE_TOO_LARGE


def test_pil_globals_are_restored(image_bytes):
    before = Image.MAX_IMAGE_PIXELS
    normalize_image(image_bytes(), max_pixels=1234)
    with pytest.raises(Rejected):
        normalize_image(b"junk", max_pixels=1234)
    assert Image.MAX_IMAGE_PIXELS == before


def test_read_image_file_missing_and_empty(tmp_path):
    with pytest.raises(Rejected) as err:
        read_image_file(tmp_path / "nope.png", max_bytes=CAP)
    assert err.value.reason == QuarantineReason.MISSING_IMAGE
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(Rejected) as err:
        read_image_file(tmp_path / "empty.png", max_bytes=CAP)
    assert err.value.reason == QuarantineReason.EMPTY_IMAGE


def test_read_image_file_reads_at_most_the_cap(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * 10_000)
    assert read_image_file(path, max_bytes=10_000) == b"\xff" * 10_000
    with pytest.raises(Rejected, match=r"over \[ingest\] max_bytes = 9999") as err:
        read_image_file(path, max_bytes=9_999)
    assert err.value.reason == QuarantineReason.IMAGE_TOO_LARGE


def test_running_out_of_memory_while_decoding_is_image_too_large(image_bytes, monkeypatch):
    from PIL import ImageFile

    def exhausted(self):
        raise MemoryError()

    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
    with pytest.raises(Rejected) as err:
        normalize_image(image_bytes(), max_pixels=CAP)
    assert err.value.reason == QuarantineReason.IMAGE_TOO_LARGE and "memory" in err.value.message
