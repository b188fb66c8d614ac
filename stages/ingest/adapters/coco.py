"""Adapter ``coco``: COCO detection JSON, or RefCOCO-style referring expressions.

- Detection (``images``, ``annotations`` with ``bbox`` as xywh pixels, ``categories``): one grounding task
  per (image, category) with every box of that category, prompt ``detection_prompt``. Crowd regions
  (``iscrowd = 1``) are not boxes of single objects and are left out (their count is kept in ``meta``).
  One bad box makes the whole task ``bad_box`` (a task missing one of its objects would teach wrong answers).
- Referring (``refs``: ``{ref_id, image_id, ann_id, sentences: [{sent, sent_id}], split}``, from
  ``refs_path`` or a ``refs`` key of the JSON): one grounding task per sentence, its box the referred
  annotation's (or the ref's own ``bbox``), prompt ``referring_prompt``. The refer toolkit ships refs as a
  pickle; convert it to JSON first (pickles are never loaded).

Images are resolved against ``image_root`` (default: the JSON's folder). COCO's image ``width``/``height``
are kept as the declared size, so boxes drawn on a file's raw pixels follow its EXIF rotation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import CorpusError
from stages.base import quarantine_row
from stages.ingest.adapters.common import PlanItem, confined_image_path, existing_path, image_name
from stages.ingest.config import IngestConfig
from stages.ingest.rejected import Rejected
from stages.ingest.records import Planned, file_ref
from stages.ingest.tasks import TaskSpec, annotation_boxes, check_task
from stages.lib.boxes import BoxLayout

__all__ = ["plan_coco"]


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorpusError(f"'{path}' is not valid JSON: {exc}") from None
    except IsADirectoryError:
        raise CorpusError(f"'{path}' is a folder; expected a JSON file") from None


def _list_of_objects(data: Mapping, key: str, path: Path, required: bool = True) -> list[dict]:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CorpusError(f"'{path}' has no valid '{key}' list; a COCO file needs images, annotations and categories")
    return value


class _Images:
    """COCO image entries by id, with their file ref (one stat per image, not per task)."""

    def __init__(self, entries: list[dict], config: IngestConfig, json_path: Path) -> None:
        self._entries = {e.get("id"): e for e in entries}
        self._config = config
        self._base = config.image_root or json_path.parent
        self._refs: dict[Any, dict | Rejected] = {}

    def get(self, image_id: Any) -> tuple[dict, dict, tuple[int, int] | None]:
        """Return ``(entry, file ref, declared size)`` or raise :class:`Rejected`."""
        entry = self._entries.get(image_id)
        if entry is None:
            raise Rejected(QuarantineReason.MALFORMED_RECORD, f"image_id {image_id!r} is not in 'images'")
        name = entry.get("file_name")
        if not isinstance(name, str) or not name:
            raise Rejected(QuarantineReason.MALFORMED_RECORD, f"image {image_id!r} has no file_name")
        if image_id not in self._refs:
            try:
                self._refs[image_id] = file_ref(confined_image_path(name, self._base, self._config), image_name(name), max_bytes=self._config.max_bytes)
            except Rejected as rej:
                self._refs[image_id] = rej
        ref = self._refs[image_id]
        if isinstance(ref, Rejected):
            raise ref
        w, h = entry.get("width"), entry.get("height")
        size = (w, h) if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else None
        return entry, ref, size


def _planned(images: _Images, image_id: Any, task: TaskSpec, source: str) -> Planned:
    _, ref, size = images.get(image_id)
    task = check_task(replace(task, declared_size=size), size=size)
    return Planned(image=ref, task=task, source=source, image_key=f"file:{ref['path']}")


def _detection(data: Mapping, images: _Images, config: IngestConfig, path: Path) -> Iterator[PlanItem]:
    categories = {c.get("id"): c.get("name") for c in _list_of_objects(data, "categories", path)}
    groups: dict[tuple[Any, Any], list[dict]] = defaultdict(list)
    crowd: dict[tuple[Any, Any], int] = defaultdict(int)
    for ann in _list_of_objects(data, "annotations", path):
        key = (ann.get("image_id"), ann.get("category_id"))
        if ann.get("iscrowd"):
            crowd[key] += 1
        else:
            groups[key].append(ann)
    for (image_id, category_id), anns in groups.items():
        source = f"{config.path}:image={image_id},category={category_id}"
        record = {"image_id": image_id, "category_id": category_id, "annotation_ids": [a.get("id") for a in anns]}
        try:
            name = categories.get(category_id)
            if not isinstance(name, str) or not name.strip():
                raise Rejected(QuarantineReason.MALFORMED_RECORD, f"category_id {category_id!r} is not in 'categories'")
            boxes = []
            for ann in anns:
                try:
                    boxes += annotation_boxes([ann.get("bbox")], BoxLayout.XYWH) or []
                except Rejected as rej:
                    raise Rejected(rej.reason, f"annotation {ann.get('id')!r}: {rej.message}") from None
            meta = {"coco": {**record, "n_crowd": crowd.get((image_id, category_id), 0)}}
            prompt = config.detection_prompt.format(category=name.strip())
            yield _planned(images, image_id, TaskSpec("grounding", prompt, boxes=boxes, meta=meta), source)
        except Rejected as rej:
            yield quarantine_row(source, rej.reason, rej.message, record)


def _ref_box(ref: Mapping, annotations: Mapping[Any, dict]) -> list[list[float]]:
    bbox = ref.get("bbox")
    if bbox is None:
        ann = annotations.get(ref.get("ann_id"))
        if ann is None:
            raise Rejected(QuarantineReason.MALFORMED_RECORD, f"ann_id {ref.get('ann_id')!r} is not in 'annotations'")
        bbox = ann.get("bbox")
    return annotation_boxes([bbox], BoxLayout.XYWH) or []


def _referring(
    refs: list[dict], data: Mapping, images: _Images, config: IngestConfig, where: str
) -> Iterator[PlanItem]:
    annotations = {a.get("id"): a for a in data.get("annotations") or [] if isinstance(a, dict)}
    for ref in refs:
        if config.ref_split is not None and ref.get("split") != config.ref_split:
            continue
        ref_id = ref.get("ref_id")
        sentences = ref.get("sentences")
        record = {k: ref.get(k) for k in ("ref_id", "image_id", "ann_id", "split")}
        if not isinstance(sentences, list) or not sentences:
            yield quarantine_row(f"{where}:ref={ref_id}", QuarantineReason.EMPTY_PROMPT, "ref has no sentences", record)
            continue
        for i, sentence in enumerate(sentences):
            sent = sentence if isinstance(sentence, dict) else {"sent": sentence}
            sent_id = sent.get("sent_id", i)
            source = f"{where}:ref={ref_id},sent={sent_id}"
            try:
                text = sent.get("sent") or sent.get("raw")
                if not isinstance(text, str) or not text.strip():
                    raise Rejected(QuarantineReason.EMPTY_PROMPT, f"sentence {sent_id!r} of ref {ref_id!r} is empty")
                meta = {"refcoco": {**record, "sent_id": sent_id, "expression": text.strip()}}
                prompt = config.referring_prompt.format(expression=text.strip())
                task = TaskSpec("grounding", prompt, boxes=_ref_box(ref, annotations), meta=meta)
                yield _planned(images, ref.get("image_id"), task, source)
            except Rejected as rej:
                yield quarantine_row(source, rej.reason, rej.message, {**record, "sentence": sent})


def plan_coco(config: IngestConfig) -> Iterator[PlanItem]:
    """Yield grounding tasks (detection, or referring expressions when refs are present) from ``config.path``."""
    path = existing_path(config.path, "a COCO annotation JSON file")
    data = _load_json(path)
    if not isinstance(data, dict):
        raise CorpusError(f"'{path}' must hold a JSON object with images, annotations and categories")
    images = _Images(_list_of_objects(data, "images", path), config, path)
    refs, where = data.get("refs"), str(config.path)
    if config.refs_path is not None:
        refs_file = existing_path(config.refs_path, "a RefCOCO-style refs JSON file")
        refs, where = _load_json(refs_file), str(config.refs_path)
        refs = refs.get("refs") if isinstance(refs, dict) else refs
    if refs is None:
        yield from _detection(data, images, config, path)
        return
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise CorpusError(f"refs in '{where}' must be a list of objects with ref_id, image_id, ann_id and sentences")
    yield from _referring(refs, data, images, config, where)
