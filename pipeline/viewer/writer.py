"""Write a run's static HTML viewer: pages and scripts (package data) plus paged data files and images.

Layout of ``<run>/viewer/`` (written in a sibling folder and renamed into place whole)::

    index.html task.html quarantine.html eval.html assets/   the pages (copied from pipeline/viewer/assets)
    data/summary.js                 counts, names, colours, the review file the run uses
    data/facets.js                  one compact column per filter, every task (what the index filters on)
    data/rows/page-NNNNN.js         index rows (prompt, thumbnail, list summary), ROWS_PER_PAGE tasks each
    data/tasks/chunk-NNNNN.js       full task records with their images, TASKS_PER_CHUNK each (the task page)
    data/quarantine/…               quarantine facets and pages;  data/eval/<table>/… eval tables, paged

Every data file is a script calling ``PERPO.define(name, data)``: pages opened from ``file://`` may not
``fetch()`` local files, but they may load scripts, and a page loads only the files of what it shows.
Images are data URIs inside those files (see :mod:`pipeline.viewer.images`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas.tables import ORIGINS, TASK_TYPES, empty_table
from pipeline.store import RunStore
from pipeline.viewer.images import ImageEncoder, ImageRefs
from pipeline.viewer.palette import COLOUR_MEANINGS, ORIGIN_COLOURS
from pipeline.viewer.records import STATUSES, TASK_COLUMNS, RecordBuilder, RunTables, quarantine_task_id
from stages.lib.errors import ConfigError
from stages.lib.files import atomic_folder
from stages.rank.review import ReviewDecision, ReviewFlag

__all__ = [
    "ROWS_PER_PAGE", "TASKS_PER_CHUNK", "QUARANTINE_PER_PAGE", "ASSETS", "load_run", "write_viewer", "looks_like_viewer",
]

ROWS_PER_PAGE = 250
TASKS_PER_CHUNK = 50
QUARANTINE_PER_PAGE = 500
EVAL_PER_PAGE = 500
ASSETS = Path(__file__).with_name("assets")
PAGES = ("index.html", "task.html", "quarantine.html", "eval.html")
_CODE = 32  # facet codes are characters chr(_CODE + value), value < 200
_ABSENT, _NO_REWARD = 102, 101  # per-origin best-reward codes beside 0..100 (reward in hundredths)
_SNIPPET = 140


def looks_like_viewer(folder: Path) -> bool:
    """True for a folder this module wrote (it may be replaced)."""
    return (folder / "index.html").is_file() and (folder / "data" / "summary.js").is_file()


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _script(name: str, data: Any) -> str:
    try:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a non-finite float (a -inf log-prob): null, not the invalid NaN / Infinity
        body = json.dumps(_clean(data), ensure_ascii=False, separators=(",", ":"), default=str)
    return f"PERPO.define({json.dumps(name)},{body});\n"


def _read_script(path: Path) -> Any:
    """The data of a file :func:`_write_script` wrote, or ``None`` when it is not one."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(","), text.rfind(");")
    if not text.startswith("PERPO.define(") or start < 0 or end < start:
        return None
    try:
        return json.loads(text[start + 1 : end])
    except ValueError:
        return None


def _previous_thumbs(viewer: Path | None) -> dict[str, str]:
    """Thumbnails an earlier viewer in ``viewer`` made, by image key (its rows pages list them)."""
    thumbs: dict[str, str] = {}
    for path in sorted((viewer / "data" / "rows").glob("page-*.js")) if viewer is not None else []:
        for row in _read_script(path) or []:
            if isinstance(row, list) and len(row) > 5 and row[1] and row[5]:
                thumbs[row[5]] = row[1]
    return thumbs


def _write_script(root: Path, name: str, data: Any) -> None:
    path = root / "data" / f"{name}.js"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_script(name, data), encoding="utf-8")


def _codes(values: list[int]) -> str:
    return "".join(chr(_CODE + min(max(v, 0), 199)) for v in values)


def _snippet(text: str | None, limit: int = _SNIPPET) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reward_code(reward: float | None) -> int:
    return _NO_REWARD if reward is None else int(round(min(max(reward, 0.0), 1.0) * 100))


class _Facets:
    """The index's filter columns, one value per task, in task order."""

    def __init__(self, splits: list[str]):
        self.splits = splits
        self.ids: list[str] = []
        self.cols: dict[str, list[int]] = {k: [] for k in ("type", "split", "status", "n", "pfail", "quar", "imgerr")}
        self.best: dict[str, list[int]] = {o: [] for o in ORIGINS}

    def add(self, rec: dict[str, Any], image_error: bool) -> None:
        self.ids.append(rec["id"])
        col = self.cols
        col["type"].append(TASK_TYPES.index(rec["type"]) if rec["type"] in TASK_TYPES else len(TASK_TYPES))
        col["split"].append(self.splits.index(rec["split"]) if rec["split"] in self.splits else len(self.splits))
        col["status"].append(STATUSES.index(rec["status"]))
        col["n"].append(len(rec["list"]))
        col["pfail"].append(sum(c["parse_ok"] is False for c in rec["list"] + rec["others"]))
        col["quar"].append(len(rec["quarantine"]))
        col["imgerr"].append(int(image_error))
        for origin in ORIGINS:
            rewards = [c["reward"] for c in rec["list"] if c["origin"] == origin]
            if not rewards:
                code = _ABSENT
            elif all(r is None for r in rewards):
                code = _NO_REWARD
            else:
                code = _reward_code(max(r for r in rewards if r is not None))
            self.best[origin].append(code)

    def data(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            **{k: _codes(v) for k, v in self.cols.items()},
            "best": {o: _codes(v) for o, v in self.best.items()},
        }


def _writers(cfg) -> dict[str, Any]:
    from pipeline.runner import enabled_chain, last_writers

    return last_writers(enabled_chain(cfg))


def _read(store: RunStore, writers: dict[str, Any], name: str, columns: list[str] | None = None) -> pa.Table:
    spec = writers.get(name)
    if spec is None:
        table = empty_table(name)
        return table.select(columns) if columns else table
    return store.read_table(spec.name, name, spec.writes[0], columns=columns)


def _kept_distortions(store: RunStore, writers: dict[str, Any]) -> dict[str, Path]:
    """Distorted images the perturb stage kept (``keep_images``), by file name."""
    if "candidates" not in writers or writers["candidates"].name != "perturb":
        return {}
    out: dict[str, Path] = {}
    for index in sorted(store.read_manifest("perturb").shards):
        folder = store.scratch_dir("perturb", index)
        if folder.is_dir():
            out.update({p.name: p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")})
    return out


def _review_state(cfg) -> tuple[dict[str, Any], frozenset[str]]:
    """The review file the run's config names (shown as the starting review), and the tasks it drops."""
    path = getattr(cfg.rank, "review", None)
    if path is None:
        return {"source": None, "entries": [], "error": None}, frozenset()
    from stages.rank.review import read_review

    try:
        review = read_review(Path(path))
    except ConfigError as exc:
        return {"source": str(path), "entries": [], "error": str(exc)}, frozenset()
    entries = [e.model_dump(mode="json") for e in review.entries.values()]
    drops = frozenset(t for t, e in review.entries.items() if e.decision is ReviewDecision.DROP)
    return {"source": str(path), "entries": entries, "error": None}, drops


def _eval_tables(store: RunStore, writers: dict[str, Any]) -> dict[str, pa.Table]:
    """Tables named ``eval…`` that an enabled stage writes (the eval stage's results), when present."""
    out = {}
    for name, spec in writers.items():
        if name.startswith("eval") and name != "eval_tasks":  # eval_tasks: ingest's held-out tasks, not results
            files = store.table_files(spec.name, name, spec.writes[0])
            if files:
                out[name] = pa.concat_tables([pq.read_table(f) for f in files])
    return out


def _task_files(store: RunStore, writers: dict[str, Any]) -> list[Path]:
    spec = writers.get("tasks")
    return store.table_files(spec.name, "tasks", spec.writes[0]) if spec is not None else []


class _SiteWriter:
    """Fills one staging folder with the viewer of one run."""

    def __init__(self, root: Path, previous: Path | None):
        self.root = root
        self.images = ImageEncoder(_previous_thumbs(previous))
        self.distorted: dict[str, ImageRefs] = {}

    def copy_assets(self) -> None:
        for page in PAGES:
            shutil.copyfile(ASSETS / page, self.root / page)
        (self.root / "assets").mkdir()
        for path in sorted(ASSETS.iterdir()):
            if path.suffix in (".js", ".css"):
                shutil.copyfile(path, self.root / "assets" / path.name)

    def distorted_image(self, name: str | None, kept: dict[str, Path]) -> dict[str, Any] | None:
        if not name or name not in kept:
            return None
        if name not in self.distorted:
            self.distorted[name] = self.images.add_file(kept[name])
        refs = self.distorted[name]
        return {"src": refs.display, "error": refs.error}

    def paged(self, folder: str, rows: list[Any], per_page: int) -> int:
        pages = max(1, math.ceil(len(rows) / per_page))
        for k in range(pages):
            _write_script(self.root, f"{folder}/page-{k:05d}", rows[k * per_page : (k + 1) * per_page])
        return pages


def _index_row(rec: dict[str, Any], refs: ImageRefs, key: str) -> list[Any]:
    best = rec["list"][0]["text"] if rec["list"] else None
    summary = [[ORIGINS.index(c["origin"]) if c["origin"] in ORIGINS else -1, c["reward"]] for c in rec["list"]]
    return [_snippet(rec["prompt"]), refs.thumb, refs.error, summary, _snippet(best, 90) if best is not None else None, key]


def _quarantine_pages(site: _SiteWriter, quarantine: pa.Table, positions: dict[str, int]) -> dict[str, Any]:
    rows = quarantine.to_pylist()
    task_ids = set(positions)
    stages = sorted({r["stage"] for r in rows})
    reasons = sorted({r["reason"] for r in rows})
    table = []
    for r in rows:
        tid = quarantine_task_id(r, task_ids)
        record = r["record"] if r["record"] is None or len(r["record"]) <= 2000 else r["record"][:1999] + "…"
        table.append([r["stage"], r["shard"], r["row_ref"], r["reason"], r["message"], record, positions.get(tid, -1)])
    pages = site.paged("quarantine", table, QUARANTINE_PER_PAGE)
    _write_script(
        site.root,
        "quarantine/facets",
        {"stage": _codes([stages.index(r["stage"]) for r in rows]), "reason": _codes([reasons.index(r["reason"]) for r in rows])},
    )
    return {"n": len(rows), "pages": pages, "per_page": QUARANTINE_PER_PAGE, "stages": stages, "reasons": reasons,
            "with_task": sum(1 for row in table if row[6] >= 0)}


def _eval_pages(site: _SiteWriter, tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    out = []
    for name, table in sorted(tables.items()):
        columns = [c for c in table.column_names if not pa.types.is_binary(table.schema.field(c).type)]
        rows = [[row[c] for c in columns] for row in table.select(columns).to_pylist()]
        pages = site.paged(f"eval/{name}", rows, EVAL_PER_PAGE)
        out.append({"name": name, "n": len(rows), "columns": columns, "pages": pages, "per_page": EVAL_PER_PAGE})
    return out


def load_run(cfg, store: RunStore) -> tuple[RunTables, dict[str, Any]]:
    """Read what a viewer is made of (tables without images) and where the task shards with images are."""
    writers = _writers(cfg)
    task_cols = list(TASK_COLUMNS)
    files = _task_files(store, writers)
    split = bool(files) and "split" in pq.read_schema(files[0]).names
    if split:
        task_cols.append("split")
    review, drops = _review_state(cfg)
    tables = RunTables(
        tasks=_read(store, writers, "tasks", ["task_id"]),
        scored=_read(store, writers, "scored"),
        listwise=_read(store, writers, "listwise"),
        pairs=_read(store, writers, "pairs"),
        groups=_read(store, writers, "groups"),
        quarantine=store.read_quarantine(),
        rank=cfg.rank,
        box_format=cfg.score.policy_box_format(),
        candidate_box_format=cfg.score.candidate_box_format(),
        review_drops=drops,
    )
    return tables, {"writers": writers, "task_files": files, "task_columns": task_cols, "review": review}


def write_viewer(cfg, run_dir: Path, out: Path | None = None) -> Path:
    """Write the static viewer of the run in ``run_dir`` (config ``cfg``) to ``out`` (default ``<run>/viewer``).

    Returns ``out``. The folder is built beside it and renamed into place, so it is the previous viewer
    or the whole new one; images the previous one already holds are linked, not decoded again. Raises
    :class:`ConfigError` when ``out`` exists and holds something other than a viewer.
    """
    started = time.perf_counter()
    store = RunStore(run_dir)
    out = Path(out) if out is not None else store.viewer_dir
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not looks_like_viewer(out))):
        raise ConfigError(f"view: {out} exists and is not a previous viewer; choose an empty or new folder")
    tables, info = load_run(cfg, store)
    builder = RecordBuilder(tables)
    kept = _kept_distortions(store, info["writers"])
    splits = sorted({s for f in info["task_files"] if "split" in info["task_columns"]
                     for s in pq.read_table(f, columns=["split"])["split"].to_pylist() if s is not None})
    with atomic_folder(out) as staging:
        site = _SiteWriter(staging, out if out.exists() else None)
        site.copy_assets()
        facets = _Facets(splits)
        positions: dict[str, int] = {}
        chunk: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        counts = {"chunks": 0, "row_pages": 0}

        def flush(final: bool = False) -> None:
            if chunk and (final or len(chunk) == TASKS_PER_CHUNK):
                _write_script(staging, f"tasks/chunk-{counts['chunks']:05d}", chunk)
                counts["chunks"] += 1
                chunk.clear()
            if rows and (final or len(rows) == ROWS_PER_PAGE):
                _write_script(staging, f"rows/page-{counts['row_pages']:05d}", rows)
                counts["row_pages"] += 1
                rows.clear()

        for path in info["task_files"]:
            shard = pq.read_table(path, columns=[*info["task_columns"], "image", "image_sha256"])
            for task in shard.to_pylist():
                if task["task_id"] in positions:
                    continue  # a repeated task id (quarantined by rank): shown once
                key = task.pop("image_sha256")
                refs = site.images.add((task.pop("image") or {}).get("bytes"), key)
                rec = builder.record(task)
                rec["image"] = {"thumb": refs.thumb, "src": refs.display, "error": refs.error}
                for cand in rec["list"] + rec["others"]:
                    if cand.get("distortion", {}).get("image"):
                        cand["distorted_image"] = site.distorted_image(cand["distortion"]["image"], kept)
                positions[rec["id"]] = len(positions)
                facets.add(rec, refs.error is not None)
                chunk.append(rec)
                rows.append(_index_row(rec, refs, key))
                flush()
            del shard
        flush(final=True)
        _write_script(staging, "facets", facets.data())
        quarantine = _quarantine_pages(site, tables.quarantine, positions)
        evals = _eval_pages(site, _eval_tables(store, info["writers"]))
        summary = {
            "run": Path(run_dir).resolve().name,
            "run_dir": str(Path(run_dir).resolve()),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "n_tasks": len(positions),
            "rows_per_page": ROWS_PER_PAGE,
            "tasks_per_chunk": TASKS_PER_CHUNK,
            "task_types": list(TASK_TYPES),
            "splits": splits,
            "statuses": list(STATUSES),
            "origins": list(ORIGINS),
            "colours": ORIGIN_COLOURS,
            "meanings": COLOUR_MEANINGS,
            "counts": {
                "lists": tables.listwise.num_rows,
                "pairs": tables.pairs.num_rows,
                "groups": tables.groups.num_rows,
                "candidates": tables.scored.num_rows,
            },
            "quarantine": quarantine,
            "eval": evals,
            "review": {**info["review"], "key": f"perpo-review:{Path(run_dir).resolve()}"},
            "review_flags": [f.value for f in ReviewFlag],
            "decisions": [d.value for d in ReviewDecision],
            "images": {"encoded": site.images.encoded, "reused": site.images.reused},
            "seconds": round(time.perf_counter() - started, 3),
        }
        _write_script(staging, "summary", summary)
    return out
