"""The bundled synthetic corpus: small images with exact ground truth, deterministic from a seed.

Task ``index`` of corpus ``seed`` is generated from its own random stream, so any single task can be
re-made without the others (the ingest plan stores only ``(seed, index)``; the shard renders the image).
Every third task is grounding (coloured shapes at known boxes), OCR (a rendered word or number) and
VQA (counting, colour, and multiple-choice shape questions). Images are PNG, 96x96 (OCR 128x48).
"""

from __future__ import annotations

import io
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from stages.lib.errors import ConfigError, CorpusError
from stages.lib.files import atomic_write_bytes, atomic_write_text
from stages.ingest.tasks import TaskSpec, check_task
from stages.lib.boxes import pixel_boxes_text

__all__ = [
    "MANIFEST_NAME",
    "DEMO_VERSION",
    "DemoItem",
    "demo_item",
    "demo_items",
    "render_demo_item",
    "render_demo_image",
    "write_demo_corpus",
]

MANIFEST_NAME = "manifest.jsonl"
# Part of every demo image ref, hence of the shard fingerprints: bump it when the drawing changes.
DEMO_VERSION = 1
_CANVAS = (96, 96)
_OCR_CANVAS = (128, 48)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (225, 195, 20),
    "purple": (140, 60, 170),
    "orange": (240, 130, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
_OCR_PROMPTS = (
    "What text is written in the image?",
    "Read the text in the image.",
    "Transcribe the text in this image.",
)
_WORDS = (
    "apple", "river", "cloud", "piano", "delta", "maple", "orbit", "pixel", "tiger", "lemon",
    "north", "candle", "forest", "silver", "rocket", "harbor", "velvet", "window", "garden", "summit",
)


@dataclass(frozen=True)
class Shape:
    """A filled shape whose tight pixel box is ``box`` (xyxy, x2/y2 exclusive)."""

    kind: str
    colour: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class DemoItem:
    """One synthetic task: its ground truth and everything needed to draw its image."""

    index: int
    seed: int
    task: TaskSpec
    size: tuple[int, int]
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...] = ()
    text: str | None = None
    text_xy: tuple[int, int] = (0, 0)
    font_size: int = 16

    @property
    def name(self) -> str:
        """The image's path relative to the corpus folder (also the ``path`` of its image cell)."""
        return f"images/demo-{self.seed}-{self.index:05d}.png"


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 2) -> bool:
    return a[0] >= b[2] + gap or b[0] >= a[2] + gap or a[1] >= b[3] + gap or b[1] >= a[3] + gap


def _place(rng: random.Random, specs: list[tuple[str, str]]) -> tuple[Shape, ...]:
    """Place shapes of the given (kind, colour) without overlap (2 px apart) on the canvas."""
    w, h = _CANVAS
    placed: list[Shape] = []
    for kind, colour in specs:
        for _ in range(200):
            s = rng.randint(12, 22)
            x1, y1 = rng.randint(2, w - s - 2), rng.randint(2, h - s - 2)
            box = (x1, y1, x1 + s, y1 + s)
            if all(_apart(box, b.box) for b in placed):
                placed.append(Shape(kind, colour, box))
                break
        else:  # cannot happen with <= 6 shapes of <= 22 px on 96x96, but never loop forever
            raise RuntimeError(f"demo: could not place {len(specs)} shapes")
    return tuple(placed)


def _distractors(rng: random.Random, n: int, avoid: set[tuple[str, str]]) -> list[tuple[str, str]]:
    options = [(k, c) for k in SHAPES for c in COLOURS if (k, c) not in avoid]
    return [rng.choice(options) for _ in range(n)]


def _grounding(rng: random.Random) -> tuple[TaskSpec, tuple[Shape, ...]]:
    kind, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    many = rng.random() < 0.35
    n_target = rng.randint(2, 3) if many else 1
    specs = [(kind, colour)] * n_target + _distractors(rng, rng.randint(1, 3), {(kind, colour)})
    rng.shuffle(specs)
    shapes = _place(rng, specs)
    boxes = sorted([list(map(float, s.box)) for s in shapes if (s.kind, s.colour) == (kind, colour)])
    if many:
        prompt = f"Give the bounding boxes of all {colour} {kind}s."
    else:
        prompt = f"Give the bounding box of the {colour} {kind}."
    meta = {"variant": "all" if many else "single"}
    return TaskSpec("grounding", prompt, answer=pixel_boxes_text(boxes), boxes=boxes, meta=meta), shapes


def _vqa(rng: random.Random) -> tuple[TaskSpec, tuple[Shape, ...]]:
    variant = rng.choices(["count", "colour", "choice"], weights=[4, 3, 3])[0]
    kind = rng.choice(SHAPES)
    others = [k for k in SHAPES if k != kind]
    meta = {"variant": variant}
    if variant == "count":
        n = rng.randint(1, 5)
        specs = [(kind, rng.choice(list(COLOURS))) for _ in range(n)] + [
            (rng.choice(others), rng.choice(list(COLOURS))) for _ in range(rng.randint(0, 2))
        ]
        rng.shuffle(specs)
        return TaskSpec("vqa", f"How many {kind}s are there?", answer=str(n), meta=meta), _place(rng, specs)
    colour = rng.choice(list(COLOURS))
    if variant == "colour":  # exactly one shape of this kind
        specs = [(kind, colour)] + [(rng.choice(others), rng.choice(list(COLOURS))) for _ in range(rng.randint(1, 3))]
        rng.shuffle(specs)
        return TaskSpec("vqa", f"What colour is the {kind}?", answer=colour, meta=meta), _place(rng, specs)
    # multiple choice: exactly one shape has this colour; which kind is it?
    other_colours = [c for c in COLOURS if c != colour]
    specs = [(kind, colour)] + [(rng.choice(SHAPES), rng.choice(other_colours)) for _ in range(rng.randint(1, 3))]
    rng.shuffle(specs)
    choices = list(SHAPES)
    rng.shuffle(choices)
    letters = string.ascii_uppercase
    options = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))
    prompt = f"Which shape is {colour}?\n{options}\nAnswer with the option's letter."
    answer = letters[choices.index(kind)]
    return TaskSpec("vqa", prompt, answer=answer, choices=choices, meta=meta), _place(rng, specs)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _ocr(rng: random.Random) -> tuple[TaskSpec, str, tuple[int, int], int]:
    roll = rng.random()
    if roll < 0.5:
        text = rng.choice(_WORDS)
    elif roll < 0.8:
        text = str(rng.randint(10, 99999))
    else:
        text = f"{rng.choice(string.ascii_uppercase)}{rng.randint(1, 99)}"
    w, h = _OCR_CANVAS
    size = rng.choice((16, 20, 24))
    while True:  # shrink until the text fits with a 4 px margin
        x1, y1, x2, y2 = _font(size).getbbox(text)
        if x2 - x1 <= w - 8 and y2 - y1 <= h - 8 or size <= 8:
            break
        size -= 2
    xy = (rng.randint(4, max(4, w - 4 - (x2 - x1))) - x1, rng.randint(4, max(4, h - 4 - (y2 - y1))) - y1)
    prompt = rng.choice(_OCR_PROMPTS)
    return TaskSpec("ocr", prompt, answer=text, meta={"variant": "word" if text.isalpha() else "code"}), text, xy, size


def demo_item(seed: int, index: int) -> DemoItem:
    """Return task ``index`` of the demo corpus ``seed`` (no pixels drawn yet; cheap)."""
    rng = random.Random(f"perpo-demo:{seed}:{index}")
    background = tuple(rng.randint(225, 255) for _ in range(3))
    kind = ("grounding", "ocr", "vqa")[index % 3]
    size, shapes, text, xy, font_size = _CANVAS, (), None, (0, 0), 16
    if kind == "grounding":
        task, shapes = _grounding(rng)
    elif kind == "ocr":
        task, text, xy, font_size = _ocr(rng)
        size = _OCR_CANVAS
    else:
        task, shapes = _vqa(rng)
    task = replace(task, meta={"demo": {"seed": seed, "index": index, **task.meta}})
    return DemoItem(index, seed, check_task(task, size=size), size, background, shapes, text, xy, font_size)


def demo_items(n_tasks: int, seed: int) -> Iterator[DemoItem]:
    """Yield the ``n_tasks`` tasks of demo corpus ``seed`` in order."""
    for index in range(n_tasks):
        yield demo_item(seed, index)


def render_demo_item(item: DemoItem) -> bytes:
    """Draw ``item`` and return its PNG bytes (identical bytes for identical items)."""
    img = Image.new("RGB", item.size, item.background)
    draw = ImageDraw.Draw(img)
    for s in item.shapes:
        x1, y1, x2, y2 = s.box
        fill = COLOURS[s.colour]
        if s.kind == "square":
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif s.kind == "circle":
            draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            draw.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2 - 1) / 2, y1)], fill=fill)
    if item.text is not None:
        draw.text(item.text_xy, item.text, fill=(20, 20, 30), font=_font(item.font_size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def render_demo_image(seed: int, index: int) -> bytes:
    """PNG bytes of task ``index`` of demo corpus ``seed``."""
    return render_demo_item(demo_item(seed, index))


def write_demo_corpus(out_dir: str | Path, n_tasks: int = 48, seed: int = 0) -> Path:
    """Write the demo corpus to ``out_dir`` as ``manifest.jsonl`` + ``images/*.png`` and return the manifest path.

    Reading the manifest back with ``[ingest] format = "jsonl"`` gives the same task ids as ``format = "demo"``
    with the same ``n_tasks`` and ``seed``. Each file is written to a temporary name and renamed, the
    manifest last, so an interrupted write never leaves a manifest pointing at missing images.
    """
    if n_tasks < 1:
        raise ConfigError(f"n_tasks = {n_tasks}: the demo corpus needs at least 1 task")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CorpusError(f"'{out}' exists and is not a folder; choose a new folder for the demo corpus")
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for item in demo_items(n_tasks, seed):
        atomic_write_bytes(out / item.name, render_demo_item(item))
        t = item.task
        line = {"image": item.name, "task_type": t.task_type, "prompt": t.prompt, "answer": t.answer}
        line.update({k: v for k, v in (("boxes", t.boxes), ("answers", t.answers), ("choices", t.choices)) if v})
        line["meta"] = t.meta
        lines.append(json.dumps(line, ensure_ascii=False))
    manifest = out / MANIFEST_NAME
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    return manifest
