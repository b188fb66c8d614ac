"""The ``perpo-pipeline`` command line.

User mistakes (bad config, missing paths, unknown stages, failed uploads) print one line and exit
with code 2; heavy libraries are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from stages.lib.errors import PipelineError

__all__ = ["app", "main"]

app = typer.Typer(
    name="perpo-pipeline",
    help="Preference data for vision-language models: sample, perturb, score, rank, publish, train.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Pipeline config file (TOML).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder (default: <run.runs_dir>/<run.name>).")]
SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a config value: section.key=value (repeatable).")
]


# Storage errors that are the user's to fix: a full disk or quota anywhere, a read-only or forbidden run folder.
_FULL = {errno.ENOSPC, errno.EDQUOT}
_FORBIDDEN = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Turn a full, read-only or forbidden run folder into one :class:`RunFolderError` naming it and the cause
    (a resume once the cause is fixed continues from the last finished shard)."""
    from stages.lib.errors import RunFolderError

    try:
        yield
    except OSError as exc:
        inside = exc.filename is not None and Path(exc.filename).resolve().is_relative_to(folder.resolve())
        if exc.errno in _FULL or (exc.errno in _FORBIDDEN and inside):
            where = f" ({exc.filename})" if exc.filename else ""
            cause = os.strerror(exc.errno) if exc.errno else exc.strerror
            raise RunFolderError(f"cannot write the run folder {folder}: {cause}{where}") from exc
        raise


def _run_folder(folder: Path, must_exist: bool) -> Path:
    """Return ``folder``; a path that is a file, or (``must_exist``) a folder that does not exist, is a ConfigError."""
    from stages.lib.errors import ConfigError

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"run folder {folder} is a file; pass a folder to --run-dir")
    if must_exist and not folder.is_dir():
        raise ConfigError(f"run folder {folder} does not exist; run `perpo-pipeline run` first or pass --run-dir")
    return folder


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _toml_quote(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a TOML basic string


def _load(config: Path, overrides: list[str] | None):
    from pipeline.config import load_config

    return load_config(config, overrides or [])


@app.command()
def run(
    config: ConfigOpt = Path("pipeline.toml"),
    run_dir: RunDirOpt = None,
    stages: Annotated[Optional[list[str]], typer.Option("--stages", help="Only these stages, e.g. score,rank.")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Redo this stage and all after it.")] = None,
    overrides: SetOpt = None,
    preset: Annotated[
        Optional[str], typer.Option("--preset", help="A published recipe (perpo-grounding, perpo-ocr, povid, mdpo, mipo, "
                                    "leanpo, dpo) under the config file and --set; same as --set run.preset=NAME.")
    ] = None,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="Run shards in this process, without Ray (debugging).")] = False,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bars.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Hash every finished shard file before reusing it "
                                         "(inputs and final tables always are); a damaged one is redone.")] = False,
) -> None:
    """Run the pipeline (or some stages of it) into a run folder, resuming finished shards."""
    from pipeline.runner import resolve_run_dir
    from pipeline.status import format_run_status

    cfg = _load(config, [f"run.preset={_toml_quote(preset)}"] + list(overrides or []) if preset else overrides)
    folder = _run_folder(resolve_run_dir(cfg, run_dir), must_exist=False)
    with _writing(folder):
        stage_list, forced = _split(stages), _split(force)
        if cfg.run.rounds == 1:
            _run_once(cfg, folder, stage_list, forced, not no_ray, progress, verify)
        else:
            from pipeline.eval_report import trained_model_dir
            from pipeline.rounds import run_rounds

            if not cfg.train.enabled:
                from stages.lib.errors import ConfigError

                raise ConfigError(f"[run] rounds = {cfg.run.rounds} needs the train stage; set [train] enabled = true or rounds = 1")
            run_rounds(
                cfg,
                folder,
                lambda round_cfg, round_folder, redo: _run_once(
                    round_cfg, round_folder, stage_list, redo or forced, not no_ray, progress, verify
                ),
                trained_model_dir,
                log=lambda line: typer.echo(line, err=True),
            )
    typer.echo(format_run_status(folder))


def _run_once(
    cfg, folder: Path, stages: list[str], force: list[str], use_ray: bool, progress: bool | None, verify: bool = False
) -> list:
    """One run folder: the stages, then the report and the export; the per-stage summary goes to stderr."""
    from pipeline.outputs import finalize_run
    from pipeline.runner import run_pipeline
    from pipeline.store import RunStore

    summaries = run_pipeline(cfg, folder, stages=stages, force=force, use_ray=use_ray, progress=progress, verify=verify)
    for s in summaries:
        typer.echo(
            f"{s.stage:<10} shards run {s.shards_run}, reused {s.shards_skipped} of {s.shards_total}; "
            f"quarantined {s.quarantined}; {s.seconds:.1f}s",
            err=True,
        )
    with RunStore(folder).lock():  # the report and export read the run; no other writer meanwhile
        finalize_run(cfg, folder, ran=[s.stage for s in summaries])
    return summaries


@app.command()
def status(
    config: ConfigOpt = Path("pipeline.toml"),
    run_dir: RunDirOpt = None,
    overrides: SetOpt = None,
    verify: Annotated[bool, typer.Option("--verify", help="Also hash every shard file against its manifest "
                                         "(reads the whole run folder here); damaged files are listed.")] = False,
) -> None:
    """Per stage: shards done / planned, rows, quarantined rows, damaged shard files; where the report and export are."""
    from pipeline.runner import resolve_run_dir
    from pipeline.status import format_run_status

    folder = run_dir if run_dir is not None else resolve_run_dir(_load(config, overrides), None)
    _run_folder(folder, must_exist=True)
    typer.echo(format_run_status(folder, verify=verify))


@app.command("make-demo")
def make_demo(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the demo corpus into.")],
    n_tasks: Annotated[int, typer.Option("--n-tasks", min=1, help="Number of tasks.")] = 48,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same corpus).")] = 0,
) -> None:
    """Write the synthetic demo corpus (grounding, OCR, VQA) as a JSONL manifest with PNG images."""
    from stages.ingest import write_demo_corpus

    manifest = write_demo_corpus(out, n_tasks=n_tasks, seed=seed)
    typer.echo(f"demo corpus: {manifest}")


@app.command("make-tiny-model")
def make_tiny_model(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the tiny model into.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start/--random",
            help="Fine-tune it on a synthetic split disjoint from the demo corpus, so it answers the demo tasks a "
            "little (the demo policy); an existing folder made with the same settings is reused.",
        ),
    ] = False,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Warm start: optimizer steps.")] = None,
) -> None:
    """Build a tiny VLM offline (save_pretrained), loadable like any Hub model id: random weights, or warm-started."""
    if not warm_start:
        from stages.lib.models import build_tiny_vlm

        typer.echo(f"tiny model: {build_tiny_vlm(out, seed=seed)}")
        return
    import dataclasses

    from stages.lib.models.warm_start import WarmStartSettings, ensure_warm_tiny_vlm

    settings = WarmStartSettings(model_seed=seed)
    if steps is not None:
        settings = dataclasses.replace(settings, steps=steps)
    path, built = ensure_warm_tiny_vlm(out, settings, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"warm-started tiny model: {path}" + ("" if built else " (cached)"))


@app.command()
def export(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder to export.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write (default: <run>/export).")] = None,
) -> None:
    """Write the Hub-ready dataset folder (dataset card, Parquet with embedded images), from the run's own config snapshot."""
    from pipeline.outputs import export_run
    from pipeline.store import RunStore

    _run_folder(run_dir, must_exist=True)
    with _writing(run_dir), RunStore(run_dir).lock():
        folder = export_run(run_dir, out)
    typer.echo(f"exported: {folder}")


@app.command()
def view(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder to show.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write (default: <run>/viewer).")] = None,
) -> None:
    """Write the static HTML viewer of the run's ranked lists (open its index.html; no server needed)."""
    from pipeline.outputs import view_run
    from pipeline.store import RunStore

    _run_folder(run_dir, must_exist=True)
    with RunStore(run_dir).lock():
        folder = view_run(run_dir, out)
    typer.echo(f"viewer: {(folder / 'index.html').resolve().as_uri()}")


@app.command()
def publish(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder whose export to upload.")],
    repo_id: Annotated[
        Optional[str], typer.Option("--repo-id", help="Hub dataset repo, ORG/NAME (default: [export] repo_id).")
    ] = None,
    private: Annotated[
        Optional[bool], typer.Option("--private/--public", help="Repo visibility if it is created (default: [export] private).")
    ] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Branch to upload to.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded; upload nothing.")] = False,
) -> None:
    """Upload the run's exported dataset to the Hugging Face Hub (token from HF_TOKEN or the login)."""
    from pipeline.outputs import publish_run

    typer.echo(publish_run(run_dir, repo_id, private=private, revision=revision, dry_run=dry_run))


@app.command()
def train(
    config: ConfigOpt = Path("pipeline.toml"),
    run_dir: RunDirOpt = None,
    overrides: SetOpt = None,
    nproc: Annotated[
        int, typer.Option("--nproc", min=1, help="Processes (GPUs) to train on; above 1 it starts torchrun with DDP.")
    ] = 1,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="Train in this process, without Ray.")] = False,
) -> None:
    """Train on the run's ranked lists with the loss set by train.loss (same as `run --stages train`).

    With ``--nproc K`` above 1 the runner runs the train shard under torchrun (K processes, DDP).
    """
    from pipeline.runner import resolve_run_dir, run_pipeline
    from pipeline.status import format_status, run_status

    cfg = _load(config, overrides)
    folder = _run_folder(resolve_run_dir(cfg, run_dir), must_exist=True)  # a typo must not create a folder
    executor = None
    if nproc > 1:
        from pipeline.torchrun_executor import TorchrunExecutor

        executor = TorchrunExecutor(nproc)
    with _writing(folder):
        ran = run_pipeline(cfg, folder, stages=["train"], use_ray=not no_ray, executor=executor)
        summary = next(s for s in ran if s.stage == "train")  # a damaged input redoes its writer's shard too
    typer.echo(
        f"train: shards run {summary.shards_run}, reused {summary.shards_skipped} of {summary.shards_total} "
        f"with {nproc} process(es); {summary.seconds:.1f}s",
        err=True,
    )
    typer.echo(format_status(folder, run_status(folder)))


@app.command("eval")
def eval_command(
    model: Annotated[
        Optional[str], typer.Option("--model", help="Model folder or Hub id to evaluate (default: the run's trained model).")
    ] = None,
    config: ConfigOpt = Path("pipeline.toml"),
    run_dir: RunDirOpt = None,
    overrides: SetOpt = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Folder for eval.json / eval.png (default: <run>/report/eval-<model>).")
    ] = None,
) -> None:
    """Evaluate a model beside the run's starting policy on the run's held-out tasks (settings: [eval])."""
    from pipeline.eval_report import evaluate_model_dir
    from pipeline.runner import resolve_run_dir
    from pipeline.store import RunStore
    from stages.eval.metrics import format_table

    folder = run_dir if run_dir is not None else resolve_run_dir(_load(config, overrides), None)
    snapshot = RunStore(folder).config_path
    cfg = _load(snapshot if snapshot.is_file() else config, overrides)  # the run's own settings when it has them
    summary, written = evaluate_model_dir(cfg, folder, model, out)
    typer.echo(format_table(summary))
    typer.echo(f"eval report: {written}")


@app.command("config-reference")
def config_reference() -> None:
    """Print the pipeline.toml reference (every section and key, default and description) as Markdown."""
    from pipeline.config_docs import config_reference_markdown

    typer.echo(config_reference_markdown())


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        app(standalone_mode=False)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; finished shards are kept, run again to resume", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and aborts
        import click

        # typer 0.29 (the pinned one) vendors click as typer._click: its usage errors are not click's classes
        usage_errors = (click.exceptions.ClickException, getattr(typer, "TyperException", click.exceptions.ClickException))
        if isinstance(exc, usage_errors) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
