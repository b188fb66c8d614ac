"""Example lists as PNG images for the dataset card: the image with its boxes, the ranked answers, their rewards.

One example per task type (the list with the widest reward spread, so the picture shows a preference),
drawn with the viewer's colours: ground-truth boxes dashed black, each response's parsed boxes and
reward bar in its origin's colour.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.viewer.palette import ANNOTATION, ORIGIN_COLOURS, colour_of
from stages.lib.files import atomic_write_bytes

__all__ = ["pick_examples", "draw_example", "write_gallery"]

_WIDTH, _IMAGE_SIDE, _PAD, _LINE = 960, 300, 16, 22
_TEXT_CHARS = 70


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _printable(text: str, limit: int = _TEXT_CHARS) -> str:
    """One line of ``text`` in characters the default font has (others become a middle dot)."""
    out = "".join(c if c.isascii() and c.isprintable() else "·" for c in " ".join((text or "").split()))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _fit(draw, text: str, font, width: float) -> str:
    """``text`` cut (with an ellipsis) to what fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def pick_examples(listwise, k: int = 4) -> list[str]:
    """Return up to ``k`` task ids: per task type, the list with the widest reward spread (then the longest)."""
    best: dict[str, tuple[float, int, str]] = {}
    for row in listwise.select(["task_id", "task_type", "rewards", "responses"]).to_pylist():
        rewards = [r for r in row["rewards"] or [] if r is not None]
        key = (max(rewards) - min(rewards) if rewards else 0.0, len(row["responses"]), row["task_id"])
        if row["task_type"] not in best or key[:2] > best[row["task_type"]][:2]:
            best[row["task_type"]] = key
    ranked = sorted(best.values(), key=lambda t: (-t[0], -t[1]))
    return [t[2] for t in ranked[:k]]


def _dashed_rect(draw, box, colour: str, scale: float, dash: int = 6) -> None:
    x1, y1, x2, y2 = (v * scale for v in box)
    for a, b, horizontal in (((x1, y1), (x2, y1), True), ((x1, y2), (x2, y2), True), ((x1, y1), (x1, y2), False), ((x2, y1), (x2, y2), False)):
        length = (b[0] - a[0]) if horizontal else (b[1] - a[1])
        pos = 0.0
        while pos < length:
            end = min(pos + dash, length)
            if horizontal:
                draw.line([(a[0] + pos, a[1]), (a[0] + end, a[1])], fill=colour, width=2)
            else:
                draw.line([(a[0], a[1] + pos), (a[0], a[1] + end)], fill=colour, width=2)
            pos += 2 * dash


def _legend(draw, y: int, font) -> None:
    """The colour key along the bottom edge: one chip per origin, the annotation's boxes dashed."""
    x = _PAD
    for name, colour in ORIGIN_COLOURS.items():
        label = "ground-truth boxes (dashed)" if name == ANNOTATION else name
        if name == ANNOTATION:
            _dashed_rect(draw, (x, y + 2, x + 12, y + 12), colour, 1.0, dash=3)
        else:
            draw.rectangle([x, y + 2, x + 12, y + 12], fill=colour)
        draw.text((x + 17, y), label, fill="#333333", font=font)
        x += 30 + int(draw.textlength(label, font=font))


def draw_example(record: dict[str, Any], image_bytes: bytes | None, max_responses: int = 8) -> bytes:
    """Return one example list as PNG bytes: the image with boxes on the left, the ranked answers on the right."""
    from PIL import Image, ImageDraw

    responses = record["list"][:max_responses]
    height = max(_IMAGE_SIDE + 2 * _PAD, 2 * _PAD + 70 + _LINE * len(responses)) + 28
    canvas = Image.new("RGB", (_WIDTH, height), "white")
    draw = ImageDraw.Draw(canvas)
    small, normal, bold = _font(12), _font(14), _font(15)
    try:
        img = Image.open(io.BytesIO(image_bytes or b"")).convert("RGB")
        scale = _IMAGE_SIDE / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST)
        layer = ImageDraw.Draw(img)
        for box in record["gt_boxes"]:
            _dashed_rect(layer, box, colour_of(ANNOTATION), scale)
        for cand in responses:
            for box in cand.get("boxes") or []:
                layer.rectangle([v * scale for v in box], outline=colour_of(cand["origin"]), width=2)
        canvas.paste(img, (_PAD, _PAD))
    except Exception:  # an image that does not decode: a labelled empty frame instead
        draw.rectangle([_PAD, _PAD, _PAD + _IMAGE_SIDE, _PAD + _IMAGE_SIDE], outline="#999999")
        draw.text((_PAD + 10, _PAD + _IMAGE_SIDE // 2), "image not available", fill="#666666", font=normal)
    x = 2 * _PAD + _IMAGE_SIDE
    draw.text((x, _PAD), f"{record['type']} · {record['id']}", fill="#000000", font=bold)
    room = _WIDTH - x - _PAD
    draw.text((x, _PAD + 22), _fit(draw, _printable(record["prompt"], 200), normal, room), fill="#333333", font=normal)
    if record.get("answer"):
        answer = "ground truth: " + _printable(record["answer"], 200)
        draw.text((x, _PAD + 42), _fit(draw, answer, small, room), fill="#555555", font=small)
    y = _PAD + 70
    for i, cand in enumerate(responses):
        colour = colour_of(cand["origin"])
        reward = cand.get("reward")
        draw.text((x, y), f"{i + 1}.", fill="#000000", font=normal)
        draw.rectangle([x + 24, y + 4, x + 124, y + 14], fill="#eeeeee")
        if reward is not None:
            draw.rectangle([x + 24, y + 4, x + 24 + round(100 * reward), y + 14], fill=colour)
        draw.text((x + 130, y), "  –  " if reward is None else f"{reward:.2f}", fill="#000000", font=normal)
        draw.text((x + 175, y), cand["origin"], fill=colour, font=small)
        draw.text((x + 290, y), _fit(draw, _printable(cand["text"]), normal, _WIDTH - x - 290 - _PAD), fill="#222222", font=normal)
        y += _LINE
    _legend(draw, height - 22, small)
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=True)
    return out.getvalue()


def write_gallery(cfg, run_dir: Path, out_dir: Path, k: int = 4) -> list[Path]:
    """Write ``example-N.png`` for up to ``k`` example lists of the run into ``out_dir``; return the files."""
    from pipeline.store import RunStore
    from pipeline.viewer.records import RecordBuilder
    from pipeline.viewer.writer import load_run

    store = RunStore(run_dir)
    tables, info = load_run(cfg, store)
    ids = pick_examples(tables.listwise, k)
    if not ids:
        return []
    builder = RecordBuilder(tables)
    found: dict[str, tuple[dict[str, Any], bytes | None]] = {}
    for path in info["task_files"]:
        shard = pq.read_table(path, columns=[*info["task_columns"], "image"])
        shard = shard.filter(pc.is_in(shard["task_id"], value_set=pa.array(ids)))
        for task in shard.to_pylist():
            image = (task.pop("image") or {}).get("bytes")
            found.setdefault(task["task_id"], (builder.record(task), image))
        if len(found) == len(ids):
            break
    out_dir = Path(out_dir)
    for old in out_dir.glob("example-*.png") if out_dir.is_dir() else []:
        old.unlink()
    written = []
    for n, task_id in enumerate(t for t in ids if t in found):
        path = out_dir / f"example-{n + 1}.png"
        atomic_write_bytes(path, draw_example(*found[task_id]))
        written.append(path)
    return written
