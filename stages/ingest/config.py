"""The ``[ingest]`` config section: which corpus to read, how to map its fields, and the image limits."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator

from data_schemas.tables import TaskType
from stages.base import StageConfig
from stages.lib.boxes import BoxLayout

__all__ = ["CorpusFormat", "IngestConfig"]


class CorpusFormat(StrEnum):
    """Corpus formats ingest can read; each has one adapter in :mod:`stages.ingest.adapters`."""

    DEMO = "demo"
    COCO = "coco"
    JSONL = "jsonl"
    PARQUET = "parquet"


def _check_placeholder(template: str, name: str, field: str) -> str:
    if "{" + name + "}" not in template:
        raise ValueError(f"[ingest] {field} = {template!r} must contain the placeholder {{{name}}}")
    try:
        template.format(**{name: "x"})
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"[ingest] {field} = {template!r} may only use the placeholder {{{name}}} ({exc})") from None
    return template


class IngestConfig(StageConfig):
    """Where the corpus is and how to turn it into ``tasks`` rows."""

    # --- which corpus -------------------------------------------------------------------------
    format: CorpusFormat = Field(
        default=CorpusFormat.DEMO,
        description="Corpus format: demo (synthetic, generated in-process), coco (COCO detection or "
        "RefCOCO-style JSON), jsonl (manifest, one task per line) or parquet (embedded images, as Hub datasets ship).",
    )
    path: Path | None = Field(
        default=None,
        description="Corpus location: the COCO annotation JSON, the JSONL manifest, or a Parquet file or folder "
        "of Parquet files. Required for every format but demo.",
    )
    image_root: Path | None = Field(
        default=None,
        description="Folder that relative image paths are resolved against; default: the folder of `path`. "
        "It is also the corpus root images must lie in (see allow_outside_root).",
    )
    allow_outside_root: bool = Field(
        default=False,
        description="Read images whose path (symlinks resolved) lies outside the corpus root: `image_root`, else "
        "the folder of `path` (or `path` itself when it is a folder). Off: such rows are quarantined as "
        "outside_root, so `../x.png`, absolute paths and symlinks out of the corpus never enter the dataset.",
    )

    # --- demo corpus --------------------------------------------------------------------------
    n_tasks: int = Field(default=48, ge=1, description="demo: number of synthetic tasks (grounding, OCR, VQA in turn).")
    seed: int = Field(default=0, description="demo: seed of the synthetic corpus; the same seed gives the same tasks.")

    # --- COCO / RefCOCO -----------------------------------------------------------------------
    refs_path: Path | None = Field(
        default=None,
        description="coco: RefCOCO-style refs JSON (a list of refs, or an object with a `refs` list). When set, or "
        "when the annotation JSON has a `refs` key, each referring sentence becomes one grounding task instead of "
        "one task per (image, category).",
    )
    ref_split: str | None = Field(default=None, description="coco: keep only refs of this split (e.g. val, testA).")
    detection_prompt: str = Field(
        default="Give the bounding box of every {category}.",
        description="coco: prompt of a detection task; {category} is the category name.",
    )
    referring_prompt: str = Field(
        default="Give the bounding box of the region this sentence describes: {expression}",
        description="coco: prompt of a referring-expression task; {expression} is the sentence.",
    )

    # --- JSONL / Parquet field names ----------------------------------------------------------
    image_column: str = Field(
        default="image", description="jsonl/parquet: field holding the image (path or {bytes, path})."
    )
    prompt_column: str = Field(default="prompt", description="jsonl/parquet: field holding the prompt text.")
    task_type_column: str = Field(default="task_type", description="jsonl/parquet: field holding the task type.")
    answer_column: str = Field(default="answer", description="jsonl/parquet: field holding the ground-truth text.")
    boxes_column: str = Field(default="boxes", description="jsonl/parquet: field holding the ground-truth boxes.")
    answers_column: str = Field(default="answers", description="jsonl/parquet: field holding all annotator answers.")
    choices_column: str = Field(default="choices", description="jsonl/parquet: field holding multiple-choice options.")
    meta_column: str = Field(default="meta", description="jsonl/parquet: field holding a JSON object kept as `meta`.")
    split_column: str = Field(
        default="split",
        description="jsonl/parquet: field naming a row's split (train; eval, val, validation, dev or test = held out). "
        "Rows without one are split by `eval_fraction`.",
    )
    default_task_type: TaskType | None = Field(
        default=None,
        description="jsonl/parquet: task type of rows that have none (e.g. vqa for a Hub VQA dataset); "
        "unset: such rows are quarantined as unknown_task_type.",
    )
    box_layout: BoxLayout = Field(
        default=BoxLayout.XYXY,
        validation_alias=AliasChoices("box_layout", "box_format"),
        description="jsonl/parquet: which four pixel numbers a ground-truth box holds, xyxy ([x1, y1, x2, y2]) "
        "or xywh ([x, y, width, height]). (The key was called box_format before; that name still reads.)",
    )

    # --- held-out split -----------------------------------------------------------------------
    eval_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of tasks held out for the eval stage (chosen by a hash of the task id, so the same "
        "task is always on the same side). Held-out tasks go to `ingest/eval_tasks/`; no stage that trains "
        "sees them. A corpus row's own split (`split_column`) takes precedence.",
    )

    # --- sharding and image checks ------------------------------------------------------------
    shard_size: int = Field(default=256, ge=1, description="Tasks per shard (the unit of resume and of parallelism).")
    max_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description="Largest image accepted, in pixels (width x height), checked from the header before decoding; "
        "larger images are quarantined as image_too_large (decompression-bomb guard).",
    )
    max_bytes: int = Field(
        default=256 * 2**20,
        ge=1,
        description="Largest image file accepted, in bytes (256 MiB: a 40 MP 8-bit RGB image stored uncompressed "
        "is 120 MB); checked from the file size at planning and capped when reading, so a huge file is never read "
        "whole. Larger files are quarantined as image_too_large.",
    )
    box_tolerance: float = Field(
        default=1.0,
        ge=0.0,
        description="How far (pixels) a box may reach past the image edge and still be clipped to it rather than "
        "quarantined as bad_box.",
    )
    jpeg_quality: int = Field(
        default=95,
        ge=1,
        le=100,
        description="JPEG quality used when a JPEG source must be re-encoded (EXIF rotation, non-RGB mode); "
        "other re-encoded images are stored as PNG.",
    )

    def corpus_root(self) -> Path:
        """The folder every image must lie in unless ``allow_outside_root``: ``image_root``, else the folder of
        ``path`` (``path`` itself when it is a folder)."""
        if self.image_root is not None:
            return self.image_root
        if self.path is None:
            raise ValueError("[ingest] path is not set; the demo corpus has no corpus root")
        return self.path if self.path.is_dir() else self.path.parent

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> object:
        if isinstance(value, str) and value not in {f.value for f in CorpusFormat}:
            raise ValueError(
                f"unknown [ingest] format {value!r}; available: {', '.join(f.value for f in CorpusFormat)}"
            )
        return value

    @field_validator("detection_prompt")
    @classmethod
    def _detection_placeholder(cls, value: str) -> str:
        return _check_placeholder(value, "category", "detection_prompt")

    @field_validator("referring_prompt")
    @classmethod
    def _referring_placeholder(cls, value: str) -> str:
        return _check_placeholder(value, "expression", "referring_prompt")

    @model_validator(mode="after")
    def _path_required(self) -> IngestConfig:
        if self.format != CorpusFormat.DEMO and self.path is None:
            raise ValueError(
                f"[ingest] path is required for format = {self.format.value!r}; set it to the corpus file or folder "
                "(or use format = \"demo\")"
            )
        return self
