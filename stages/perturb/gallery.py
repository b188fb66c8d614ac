"""A picture of what the configured distortions do: each original image beside each distorted copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from data_schemas import decode_image_cell
from stages.perturb.config import PerturbConfig
from stages.perturb.distortions import DistortionSpec, apply_distortion

__all__ = ["write_gallery", "make_gallery"]

_LABEL_H = 18


def _tile(image: Any, label: str, size: int):
    from PIL import Image, ImageDraw, ImageOps

    tile = Image.new("RGB", (size, size + _LABEL_H), "white")
    tile.paste(ImageOps.contain(image, (size, size)), (0, _LABEL_H))
    ImageDraw.Draw(tile).text((4, 3), label, fill="black")
    return tile


def write_gallery(
    image: Any | Sequence[Any],
    distortions: Sequence[DistortionSpec],
    out_png: str | Path,
    seed: int = 0,
    tile_size: int = 192,
) -> Path:
    """Write a PNG grid: one row per image (a PIL image or several), the original then one column per distortion.

    Each distorted tile is made with the same ``seed`` the label shows, so the picture is
    reproducible. Returns the path written (parent folders are created).
    """
    from PIL import Image

    images = [image] if hasattr(image, "convert") else list(image)
    if not images:
        raise ValueError("write_gallery needs at least one image")
    rows = []
    for img in images:
        img = img.convert("RGB")
        tiles = [_tile(img, "original", tile_size)]
        tiles += [_tile(Image.fromarray(apply_distortion(img, spec, seed)), spec.label, tile_size) for spec in distortions]
        rows.append(tiles)
    cols = max(len(r) for r in rows)
    pad = 4
    th = tile_size + _LABEL_H
    sheet = Image.new("RGB", (cols * (tile_size + pad) + pad, len(rows) * (th + pad) + pad), (230, 230, 230))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            sheet.paste(tile, (pad + c * (tile_size + pad), pad + r * (th + pad)))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def make_gallery(tasks_table: pa.Table, config: PerturbConfig, out_png: str | Path, max_images: int = 2) -> Path:
    """Write ``report/distortions.png``-style gallery from the first decodable images of ``tasks_table``.

    Uses ``config.distortion.distortions`` and ``config.distortion.seed``. Raises ``ValueError`` when
    the table has no decodable image.
    """
    images = []
    for cell in tasks_table.column("image").to_pylist():
        try:
            images.append(decode_image_cell(cell))
        except Exception:  # an undecodable image is quarantined by the stage; skip it here
            continue
        if len(images) == max_images:
            break
    if not images:
        raise ValueError("make_gallery: the tasks table has no decodable image")
    return write_gallery(images, config.distortion.distortions, out_png, seed=config.distortion.seed)
