"""What a run leaves besides its tables: the report, the Hub-ready export, the upload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_schemas import TASK_TYPES
from pipeline.config import load_config
from pipeline.eval_report import eval_summary, write_eval_report
from pipeline.export import CONFIGS, is_export_folder
from pipeline.report import REPORT_TABLES
from pipeline.runner import enabled_chain, last_writers
from pipeline.store import RunStore
from stages.lib.errors import ConfigError

__all__ = ["collect_tables", "stage_metrics", "write_run_report", "finalize_run", "export_run", "publish_run", "view_run"]

EXAMPLES_DIR = "examples"  # report/examples/example-N.png: example lists drawn for the dataset card
TASK_COLUMNS_WITHOUT_IMAGES = ["task_id", "task_type", "prompt", "answer", "width", "height", "source"]
EXPORT_TABLES: tuple[str, ...] = ("tasks", *CONFIGS)  # what the export reads: the ranked tables and their images


def collect_tables(cfg, run_dir: Path, names: tuple[str, ...], with_images: bool = False) -> dict[str, pa.Table]:
    """Read the run's final version of each table in ``names`` (the last enabled stage writing it, finished
    shards only); ``quarantine`` is every stage's merged quarantine. Tables no enabled stage writes are left out."""
    store = RunStore(run_dir)
    writers = last_writers(enabled_chain(cfg))
    tables: dict[str, pa.Table] = {}
    for name in names:
        if name == "quarantine":
            tables[name] = store.read_quarantine()
            continue
        spec = writers.get(name)
        if spec is None:
            continue
        columns = None if (name != "tasks" or with_images) else TASK_COLUMNS_WITHOUT_IMAGES
        tables[name] = store.read_table(spec.name, name, spec.writes[0], columns=columns)
    return tables


def stage_metrics(cfg, run_dir: Path) -> dict[str, dict[str, float]]:
    """Sum each stage's per-shard metrics over its finished shards."""
    store = RunStore(run_dir)
    out: dict[str, dict[str, float]] = {}
    for spec in enabled_chain(cfg):
        totals: dict[str, float] = {}
        for rec in store.read_manifest(spec.name).shards.values():
            for key, value in rec.metrics.items():
                totals[key] = totals.get(key, 0.0) + value
        out[spec.name] = totals
    return out


def public_model_name(model: str) -> str:
    """How a card that may be published names a model: a Hub id as is, a local folder by its name only (its
    path can hold user names and mount points)."""
    path = Path(model).expanduser()
    return path.resolve().name if path.exists() else model


def _eval_markdown(run_dir: Path) -> str | None:
    from stages.eval.metrics import markdown_table

    summary = eval_summary(run_dir)
    return None if summary is None else markdown_table(summary)


def _card_info(cfg, stats: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    """What the dataset card says about how the data was made, from the run's config and stats."""
    perturbations: list[str] = []
    if cfg.perturb.enabled:
        if cfg.perturb.hallucination.enabled:
            perturbations.append(f"hallucination injection ({cfg.perturb.hallucination.mode} mode)")
        if cfg.perturb.distortion.enabled:
            perturbations += [f"image distortion: {d.label}" for d in cfg.perturb.distortion.distortions]
    tasks = stats.get("tasks", {})
    counts = {
        "tasks in": tasks.get("in", 0),
        "lists out": tasks.get("out", 0),
        "candidates": stats.get("candidates", {}).get("total", 0),
        "quarantined": stats.get("quarantine", {}).get("total", 0),
    }
    return {
        "repo_id": cfg.export.repo_id,
        "pretty_name": cfg.export.pretty_name or f"{cfg.run.name}: VLM preference data (perpo-pipeline)",
        "model": public_model_name(cfg.sample.engine.model),
        "N": cfg.sample.n,
        "rewards": {t: str(cfg.score.kind_for(t)) for t in TASK_TYPES},
        "perturbations": perturbations,
        "counts": counts,
        "license": cfg.export.license,
        "plots": sorted(report_dir.glob("*.png")) if report_dir.is_dir() else [],
        "eval_table": _eval_markdown(report_dir.parent),
        "examples": sorted((report_dir / EXAMPLES_DIR).glob("example-*.png")) if report_dir.is_dir() else [],
    }


def _snapshot_config(run_dir: Path):
    snapshot = RunStore(run_dir).config_path
    if not snapshot.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {snapshot.name}); pass the folder `perpo-pipeline run` wrote")
    return load_config(snapshot)


def _unfinished_export_writer(cfg, run_dir: Path) -> str | None:
    """The first stage the export reads from that has not finished (or is not enabled), else None."""
    store = RunStore(run_dir)
    chain = enabled_chain(cfg)
    writers = last_writers(chain)
    missing = [t for t in EXPORT_TABLES if t not in writers]
    if missing:
        return f"no enabled stage writes {missing[0]!r}"
    needed = {writers[t].name for t in EXPORT_TABLES}
    for spec in chain:  # in data-flow order: name the earliest unfinished one
        if spec.name in needed and not store.read_manifest(spec.name).complete:
            return f"the {spec.name} stage has not finished"
    return None


def _ensure_exportable(cfg, run_dir: Path) -> None:
    unfinished = _unfinished_export_writer(cfg, run_dir)
    if unfinished:
        raise ConfigError(f"{run_dir}: {unfinished}; run `perpo-pipeline run` first")


def write_run_report(cfg, run_dir: Path) -> dict[str, Any]:
    """Write ``report/stats.json`` and the plots for the run; return the stats."""
    from pipeline.report import write_report

    store = RunStore(run_dir)
    stats = write_report(collect_tables(cfg, run_dir, REPORT_TABLES), stage_metrics(cfg, run_dir), store.report_dir)
    write_distortion_gallery(cfg, run_dir)
    from pipeline.viewer import write_gallery

    write_gallery(cfg, run_dir, store.report_dir / EXAMPLES_DIR)
    return stats


def write_distortion_gallery(cfg, run_dir: Path) -> Path | None:
    """Write ``report/distortions.png`` (originals beside each configured distortion) when distortions are on."""
    if not (cfg.perturb.enabled and cfg.perturb.distortion.enabled and cfg.perturb.distortion.distortions):
        return None
    from stages.perturb import make_gallery

    store = RunStore(run_dir)
    writer = last_writers(enabled_chain(cfg)).get("tasks")
    if writer is None:
        return None
    for index in sorted(store.read_manifest(writer.name).shards):
        tasks = store.read_shard(writer.name, "tasks", index, writer.writes[0], columns=["image"])
        if tasks.num_rows:
            try:
                return make_gallery(tasks.slice(0, 8), cfg.perturb, store.report_dir / "distortions.png")
            except ValueError:
                continue
    return None


def export_run(run_dir: Path, out: Path | None = None, cfg=None) -> Path:
    """Write the run's Hub-ready dataset folder to ``out`` (default ``<run>/export``); return it."""
    from pipeline.export import export_dataset

    run_dir = Path(run_dir)
    cfg = cfg or _snapshot_config(run_dir)
    _ensure_exportable(cfg, run_dir)
    store = RunStore(run_dir)
    stats_file = store.stats_path
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else write_run_report(cfg, run_dir)
    tables = collect_tables(cfg, run_dir, EXPORT_TABLES, with_images=True)
    return export_dataset(tables, Path(out) if out else store.export_dir, _card_info(cfg, stats, store.report_dir))


def publish_run(
    run_dir: Path,
    repo_id: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    dry_run: bool = False,
) -> str:
    """Upload the run's export folder (made first if missing) to a Hub dataset repo; return what to print.

    ``repo_id`` and ``private`` default to the run's ``[export]`` settings; no repo id at all is a
    :class:`ConfigError`.
    """
    from pipeline.publish import publish_folder

    cfg = _snapshot_config(Path(run_dir))
    repo_id = repo_id or cfg.export.repo_id
    if not repo_id:
        raise ConfigError("no Hub repo given: pass --repo-id ORG/NAME or set [export] repo_id")
    private = cfg.export.private if private is None else private
    store = RunStore(Path(run_dir))
    folder = store.export_dir if is_export_folder(store.export_dir) else export_run(Path(run_dir), cfg=cfg)
    report = publish_folder(folder, repo_id, private=private, revision=revision, dry_run=dry_run)
    lines = [report.summary()]
    if dry_run:
        lines += [f"  {f.path}  ({f.size:,} bytes)" for f in report.files]
    return "\n".join(lines)


def view_run(run_dir: Path, out: Path | None = None, cfg=None) -> Path:
    """Write the run's static HTML viewer to ``out`` (default ``<run>/viewer``); return it."""
    from pipeline.viewer import write_viewer

    run_dir = Path(run_dir)
    cfg = cfg or _snapshot_config(run_dir)
    _ensure_exportable(cfg, run_dir)
    return write_viewer(cfg, run_dir, Path(out) if out else None)


def finalize_run(cfg, run_dir: Path, ran: list[str]) -> None:
    """After `run`: write the report, the export and the viewer when the ranked tables are complete and the config asks for them."""
    if _unfinished_export_writer(cfg, run_dir):
        return
    if cfg.run.report:
        write_run_report(cfg, run_dir)
        write_eval_report(run_dir)
    if cfg.run.export:
        export_run(run_dir, cfg=cfg)
    if getattr(cfg.run, "viewer", False):
        view_run(run_dir, cfg=cfg)
