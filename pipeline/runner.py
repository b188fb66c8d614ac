"""Runs the stage chain over a run folder with shard-level resume.

For each enabled stage in data-flow order: work out its shards and their fingerprints, skip the
shards whose output exists with the same fingerprint, run the others on the executor, commit each
finished shard atomically, then merge the stage's quarantine rows. ``--force`` redoes a stage and
everything after it; ``--stages`` runs a subset (their inputs must already exist).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from data_schemas import SCHEMA_VERSION
from pipeline.config import config_to_toml, section_for_fingerprint
from stages.lib.errors import ConfigError
from pipeline.executor import ShardDone, ShardJob, stage_result
from pipeline.fingerprint import shard_fingerprint, table_hash
from pipeline.progress import StageProgress
from pipeline.shard_check import ShardHashError
from pipeline.store import Manifest, RunStore
from stages.base import ShardOutput, ShardResult, StageSpec
from stages import registry

_log = logging.getLogger(__name__)

__all__ = [
    "StageSummary",
    "enabled_chain",
    "check_chain",
    "last_writers",
    "producers",
    "fan_in_hashes",
    "scratch_key",
    "shard_input_hashes",
    "run_pipeline",
    "resolve_run_dir",
    "terminal_tables",
]

log = logging.getLogger(__name__)

@dataclass
class StageSummary:
    """What one stage did in this invocation."""

    stage: str
    shards_total: int = 0
    shards_run: int = 0
    shards_skipped: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    seconds: float = 0.0


def resolve_run_dir(cfg: BaseModel, run_dir: Path | None) -> Path:
    """The run folder: ``--run-dir`` if given, else ``<run.runs_dir>/<run.name>``."""
    return Path(run_dir) if run_dir else Path(cfg.run.runs_dir) / cfg.run.name


def enabled_chain(cfg: BaseModel) -> list[StageSpec]:
    """The registered stages whose section has ``enabled = true``, in data-flow order."""
    return [spec for spec in registry.stage_specs() if getattr(cfg, spec.name).enabled]


def last_writers(chain: list[StageSpec]) -> dict[str, StageSpec]:
    """Map each table written in ``chain`` to the last stage of ``chain`` that writes it (whose output is final)."""
    latest: dict[str, StageSpec] = {}
    for spec in chain:
        for table in spec.writes:
            latest[table] = spec
    return latest


def producers(chain: list[StageSpec]) -> dict[str, dict[str, StageSpec]]:
    """For each stage, map each table it reads to the nearest upstream stage in ``chain`` that writes it."""
    out: dict[str, dict[str, StageSpec]] = {}
    for i, spec in enumerate(chain):
        upstream = last_writers(chain[:i])
        out[spec.name] = {t: upstream[t] for t in spec.reads if t in upstream}
    return out


def terminal_tables(chain: list[StageSpec]) -> dict[str, set[str]]:
    """For each stage, the tables it writes that no later stage of ``chain`` reads from it (the run's final
    tables): no worker reads them as input, so the runner has their skipped shards hashed on every run."""
    found = producers(chain)
    read_from: dict[str, set[str]] = {s.name: set() for s in chain}
    for spec in chain:
        for table, source in found[spec.name].items():
            read_from[source.name].add(table)
    return {s.name: set(s.writes) - read_from[s.name] for s in chain}


def check_chain(chain: list[StageSpec]) -> None:
    """Raise :class:`ConfigError` if a stage reads a table no enabled stage before it writes."""
    found = producers(chain)
    for spec in chain:
        missing = [t for t in spec.reads if t not in found[spec.name]]
        if missing:
            raise ConfigError(
                f"stage {spec.name} reads {', '.join(missing)}, which no enabled stage before it writes; "
                f"enable the stage that produces it"
            )


def _stage_names_arg(names: list[str], chain: list[StageSpec], flag: str) -> list[str]:
    known = [s.name for s in registry.stage_specs()]
    for name in names:
        if name not in known:
            raise ConfigError(f"{flag} {name!r}: unknown stage; available: {', '.join(known)}")
        if name not in [s.name for s in chain]:
            raise ConfigError(f"{flag} {name!r}: the stage is disabled in the config ([{name}] enabled = false)")
    return names


def scratch_key(spec: StageSpec, section_data: dict[str, Any], input_hashes: list[str]) -> str:
    """The fingerprint a shard's scratch folder is kept under: its fingerprint minus ``spec.resume_neutral`` fields."""
    kept = {k: v for k, v in section_data.items() if k not in spec.resume_neutral}
    return shard_fingerprint(spec.name, kept, input_hashes)


def fan_in_hashes(upstream: dict[str, Manifest]) -> list[str]:
    """Input hashes of a fan-in shard: the content hash of every shard of every input table, in a fixed order."""
    return [f"{t}:{i}:{m.shards[i].content_hash}" for t, m in sorted(upstream.items()) for i in range(m.n_shards or 0)]


def shard_input_hashes(upstream: dict[str, Manifest], index: int) -> list[str]:
    """Input hashes of shard ``index`` of a shard-to-shard stage: the content hash of that shard of every input."""
    return [f"{t}:{m.shards[index].content_hash}" for t, m in sorted(upstream.items())]


def _stale_inputs(spec: StageSpec, manifest: Manifest, upstream: dict[str, Manifest]) -> set[str]:
    """The input tables whose producers' output differs from what the shards of ``spec`` were made from
    (shards written before input hashes were recorded, and unfinished inputs, are not judged)."""
    if not all(m.complete for m in upstream.values()):
        return set()
    if spec.fan_in:
        expected = {0: fan_in_hashes(upstream)}
    elif len({m.n_shards for m in upstream.values()}) != 1:
        return set(upstream)
    else:
        expected = {i: shard_input_hashes(upstream, i) for i in range(next(iter(upstream.values())).n_shards or 0)}
    if len(expected) != manifest.n_shards:
        return set(upstream)
    stale: set[str] = set()
    for index, rec in manifest.shards.items():
        if rec.inputs:
            stale |= {h.split(":", 1)[0] for h in set(rec.inputs) ^ set(expected.get(index, []))}
    return stale


def check_skipped_upstream(chain: list[StageSpec], selected: set[str], store: RunStore) -> None:
    """Raise :class:`ConfigError` if a stage left out of ``--stages`` but upstream of a selected one was made
    from an older output of its own inputs (its output is stale: running past it would mix old and new)."""
    found = producers(chain)
    last = max((i for i, s in enumerate(chain) if s.name in selected), default=-1)
    for spec in chain[:last]:
        if spec.name in selected or not spec.reads:
            continue
        manifest = store.read_manifest(spec.name)
        upstream = {t: store.read_manifest(s.name) for t, s in found[spec.name].items()}
        stale = _stale_inputs(spec, manifest, upstream) if manifest.complete else set()
        if stale:
            older = ", ".join(sorted({found[spec.name][t].name for t in stale}))
            raise ConfigError(
                f"stage {spec.name} was last run on an older output of stage {older}; add {spec.name} to "
                f"--stages (or drop --stages) so that what follows does not mix old and new data"
            )


class _StageRun:
    """The shards of one stage in one invocation: planning, skipping, committing."""

    def __init__(
        self, spec: StageSpec, cfg: BaseModel, store: RunStore, inputs: dict[str, StageSpec], verify_tables: set[str] = frozenset()
    ):
        self.spec = spec
        self.verify_tables = set(verify_tables)  # tables whose skipped shards are hashed (by a worker) before they count as done
        self.upstream: dict[str, Manifest] = {}
        self._recorded: dict[str, str] | None = None  # input file (relative) -> sha256, built once per plan
        self.section = getattr(cfg, spec.name)
        self.store = store
        self.inputs = inputs
        self.section_data = section_for_fingerprint(self.section)
        store.remove_stale_temporaries(spec.name)
        self._unsaved = 0  # shards committed since the manifest was last written
        self._save_every = 1
        self.manifest = store.read_manifest(spec.name)
        if self.manifest.schema_version != SCHEMA_VERSION:
            if self.manifest.shards:
                _log.warning(
                    "stage %s of this run folder was written with table schema %r; this version writes schema %r, "
                    "so its %d shard(s) are redone (resume cannot reuse them)",
                    spec.name, self.manifest.schema_version or "unknown", SCHEMA_VERSION, len(self.manifest.shards),
                )
            store.reset_stage(spec.name)
            self.manifest = Manifest(stage=spec.name)

    # -- planning --------------------------------------------------------------------------
    def plan(self) -> list[ShardJob]:
        """Return one job per shard with its fingerprint (all shards, done or not)."""
        if not self.spec.reads:
            return self._plan_source()
        upstream = {t: self.store.read_manifest(s.name) for t, s in self.inputs.items()}
        self.upstream = upstream
        self._recorded = None
        for table, manifest in upstream.items():
            self._check_input(table, manifest)
        if self.spec.prepare is not None:  # e.g. rank's review file: checked against the inputs, hashed
            self.section, extra = self.spec.prepare(self.section, self._read_input)
            self.section_data = {**self.section_data, **extra}
        if self.spec.fan_in:
            return [self._job(0, fan_in_hashes(upstream), files=self._all_files())]
        counts = {m.n_shards for m in upstream.values()}
        if len(counts) != 1:
            raise ConfigError(f"stage {self.spec.name}: its inputs have different shard counts {sorted(counts)}")
        n = counts.pop()
        return [self._job(i, shard_input_hashes(upstream, i), files=self._shard_files(i)) for i in range(n)]

    def _check_input(self, table: str, manifest: Manifest) -> None:
        """Raise :class:`ConfigError` unless every shard of the input ``table`` is recorded and intact."""
        producer = self.inputs[table].name
        if not manifest.complete:
            raise ConfigError(
                f"stage {self.spec.name} needs table {table!r} from stage {producer}, which has not "
                f"finished in {self.store.run_dir}; run it first (add it to --stages or drop --stages)"
            )
        for index in range(manifest.n_shards or 0):
            damaged = self.store.damaged_file(manifest.shards[index])
            if damaged:
                raise ConfigError(
                    f"stage {self.spec.name} needs table {table!r} from stage {producer}, whose shard {index} "
                    f"file {damaged} is missing or damaged; run stage {producer} again (it redoes that shard)"
                )

    def _plan_source(self) -> list[ShardJob]:
        if self.spec.plan is None:
            raise RuntimeError(f"stage {self.spec.name} reads no table but has no plan function")
        plan = self.spec.plan(self.section)
        self.store.write_plan_quarantine(self.spec.name, plan.quarantine)
        return [
            self._job(i, [table_hash(records)], tables={"records": records}) for i, records in enumerate(plan.shards)
        ]

    def _job(
        self,
        index: int,
        input_hashes: list[str],
        files: dict[str, list[Path]] | None = None,
        tables: dict[str, pa.Table] | None = None,
    ) -> ShardJob:
        files = files or {}
        fingerprint = shard_fingerprint(self.spec.name, self.section_data, input_hashes)
        output = ShardOutput(
            stage=self.spec.name,
            index=index,
            scratch_dir=self.store.scratch_dir(self.spec.name, index, fan_in=self.spec.fan_in).resolve(),
        )
        return ShardJob(
            index=index,
            fingerprint=fingerprint,
            output=output,
            run_dir=self.store.run_dir.resolve(),
            input_files=files,
            input_tables=tables or {},
            input_hashes=input_hashes,
            scratch_key=scratch_key(self.spec, self.section_data, input_hashes),
            input_sha256=self._recorded_sha256([p for paths in files.values() for p in paths]),
        )

    def _recorded_sha256(self, paths: list[Path]) -> dict[str, str]:
        """The sha256 the input producers' manifests recorded for ``paths`` (absolute), by path; files recorded
        without one (older manifests) are left out and read unchecked."""
        if self._recorded is None:
            self._recorded = {
                rel: sha
                for table, source in self.inputs.items()
                for rec in self.upstream.get(table, Manifest(stage=source.name)).shards.values()
                for rel, sha in rec.hashes.items()
            }
        recorded = self._recorded
        root = self.store.run_dir.resolve()
        out = {}
        for path in paths:
            sha = recorded.get(Path(path).relative_to(root).as_posix())
            if sha:
                out[str(path)] = sha
        return out

    def _shard_files(self, index: int) -> dict[str, list[Path]]:
        """The input files of shard ``index``: that shard of every input table (absolute: workers read them)."""
        return {t: [self.store.shard_path(s.name, t, index, s.writes[0]).resolve()] for t, s in self.inputs.items()}

    def _read_input(self, table: str, columns) -> pa.Table:
        source = self.inputs[table]
        return self.store.read_table(source.name, table, source.writes[0], columns=list(columns))

    def _all_files(self) -> dict[str, list[Path]]:
        """The input files of a fan-in shard: every shard of every input table, in shard order."""
        return {t: [p.resolve() for p in self.store.table_files(s.name, t, s.writes[0])] for t, s in self.inputs.items()}

    # -- committing ------------------------------------------------------------------------
    def pending(self, jobs: list[ShardJob], verify=None) -> list[ShardJob]:
        """Drop stale shards beyond the plan and return the jobs whose output is missing or outdated.

        ``verify(expected: {path: sha256}) -> damaged paths`` (the executor's, run by workers) checks the
        files of :attr:`verify_tables` of the shards that would be skipped; a damaged one is redone.
        """
        self.manifest.n_shards = len(jobs)
        self.store.drop_shards_from(self.manifest, len(jobs))
        todo = [j for j in jobs if not self.store.shard_is_valid(self.spec.name, j.index, j.fingerprint, self.manifest)]
        if verify is not None and self.verify_tables:
            todo += self._damaged_done(jobs, todo, verify)
            todo.sort(key=lambda j: j.index)
        self.store.forget_shards(self.manifest, [j.index for j in todo if j.index in self.manifest.shards])
        for job in todo:
            self.store.prepare_scratch(job.output.scratch_dir, job.scratch_key)
        # Rewriting the whole manifest after every shard is quadratic in the shard count; above 100
        # shards it is written every 1% of them, so a crash redoes at most that many finished shards.
        self._save_every = max(1, len(todo) // 100)
        return todo

    def _damaged_done(self, jobs: list[ShardJob], todo: list[ShardJob], verify) -> list[ShardJob]:
        """The jobs of shards counted as done whose files of :attr:`verify_tables` fail their sha256 check."""
        skipped = {j.index for j in jobs} - {j.index for j in todo}
        root = self.store.run_dir.resolve()
        expected: dict[str, tuple[int, str]] = {}
        for index in sorted(skipped):
            rec = self.manifest.shards[index]
            for table in sorted(self.verify_tables):
                rel = self.store.shard_path(self.spec.name, table, index, self.spec.writes[0]).relative_to(self.store.run_dir)
                sha = rec.hashes.get(rel.as_posix())
                if sha:
                    expected[str(root / rel)] = (index, sha)
        if not expected:
            return []
        damaged = verify({path: sha for path, (_, sha) in expected.items()})
        for path in damaged:
            log_damaged(Path(path).relative_to(root).as_posix(), self.spec.name, expected[path][0])
        indices = sorted({expected[path][0] for path in damaged})
        return [j for j in jobs if j.index in indices]

    def commit(self, job: ShardJob, done: ShardDone | ShardResult, seconds: float) -> None:
        """Put a finished shard's staged files in place and record it in the manifest.

        ``done`` is what a worker staged in the run folder (:class:`ShardDone`), or a result still in
        memory (an executor that hands back tables), which is staged here first.
        """
        if isinstance(done, ShardResult):
            done = stage_result(self.spec, job, done, seconds)
        self._unsaved += 1
        self.store.commit_staged(
            self.manifest,
            job.index,
            job.fingerprint,
            done.staged,
            done.metrics,
            done.artifacts,
            seconds,
            job.input_hashes,
            write_manifest=self._unsaved >= self._save_every,
            node=done.node,
        )
        if self._unsaved >= self._save_every:
            self._unsaved = 0
        self.store.drop_empty_scratch(job.output.scratch_dir)

    def flush(self) -> None:
        """Write the manifest if shards were committed since it was last written."""
        if self._unsaved:
            self.store.write_manifest(self.manifest)
            self._unsaved = 0

    def finish(self, summary: StageSummary) -> None:
        """Merge quarantine rows and fill the summary from the manifest."""
        self.flush()
        # what workers that died mid-shard (a lost node) staged and never handed back
        self.store.remove_stale_temporaries(self.spec.name)
        summary.quarantined = self.store.merge_quarantine(self.spec.name)
        for rec in self.manifest.shards.values():
            for table, count in rec.rows.items():
                summary.rows[table] = summary.rows.get(table, 0) + count


def log_damaged(rel_path: str, stage: str, index: int) -> None:
    """The one line a damaged shard file gets: the file, the stage and shard that wrote it, and what happens."""
    log.warning(
        "shard file %s does not match the sha256 recorded when stage %s wrote it (shard %d); redoing that shard",
        rel_path, stage, index,
    )


def locate_shard_file(store: RunStore, chain: list[StageSpec], path: str) -> tuple[str, int] | None:
    """The (stage, shard index) whose manifest records the file ``path`` (absolute or relative to the run folder)."""
    rel = Path(path)
    if rel.is_absolute():
        try:
            rel = rel.relative_to(store.run_dir.resolve())
        except ValueError:
            return None
    for spec in chain:
        for index, rec in store.read_manifest(spec.name).shards.items():
            if rel.as_posix() in rec.files:
                return spec.name, index
    return None


def _make_executor(cfg: BaseModel, use_ray: bool):
    if not use_ray:
        from pipeline.executor import LocalExecutor

        return LocalExecutor(share_engines=cfg.run.share_engines)
    from pipeline.executor import RayExecutor

    return RayExecutor(
        cpus_per_task=cfg.ray.cpus_per_task,
        resources=cfg.ray.resources,
        actor_start_timeout_s=cfg.ray.actor_start_timeout_s,
        share_engines=cfg.run.share_engines,
    )


def run_pipeline(
    cfg: BaseModel,
    run_dir: Path,
    stages: list[str] | None = None,
    force: list[str] | None = None,
    use_ray: bool = True,
    progress: bool | None = None,
    executor: Any = None,
    verify: bool = False,
) -> list[StageSummary]:
    """Run the enabled stages (or the ``stages`` subset) into ``run_dir`` with shard-level resume.

    Every shard file a worker reads as input is checked against the sha256 its manifest recorded; so are
    the files of the final tables (:func:`terminal_tables`) of shards that would be skipped, and with
    ``verify`` the files of every shard that would be skipped (all hashed by workers, not here). A
    damaged file is logged in one line, the shard that wrote it is redone, then what reads it; a file
    damaged again after being redone raises :class:`ShardHashError`.

    ``executor`` runs the shards (e.g. :class:`pipeline.torchrun_executor.TorchrunExecutor` for
    ``train --nproc K``); by default Ray's, or the in-process one when ``use_ray`` is false.
    Returns one summary per stage run. User mistakes raise :class:`ConfigError`; a shard that still
    fails after its retries raises :class:`StageFailedError` once the other shards are committed.
    """
    chain = enabled_chain(cfg)
    check_chain(chain)
    selected = set(_stage_names_arg(stages or [], chain, "--stages")) or {s.name for s in chain}
    forced_from = _stage_names_arg(force or [], chain, "--force")
    order = [s.name for s in chain]
    forced = {name for f in forced_from for name in order[order.index(f):]} & selected
    show = cfg.run.progress if progress is None else progress

    store = RunStore(run_dir)
    with store.lock():
        check_skipped_upstream(chain, selected, store)
        for spec in chain:  # files a stage's config names (rank's review) are checked before anything is written
            if spec.prepare is not None and spec.name in selected:
                spec.prepare(getattr(cfg, spec.name), None)
        store.write_config_snapshot(config_to_toml(cfg))
        return _run_chain(cfg, chain, store, selected, forced, use_ray and executor is None, show, executor, verify)


def _run_chain(
    cfg, chain, store: RunStore, selected: set[str], forced: set[str], use_ray: bool, show: bool, executor=None,
    verify_all: bool = False,
):
    found = producers(chain)
    final = terminal_tables(chain)
    summaries: dict[str, StageSummary] = {}
    owns_ray = False
    if use_ray:
        from pipeline.ray_runtime import check_run_dir_shared, ensure_ray

        owns_ray = ensure_ray(cfg.ray)
    try:
        if use_ray:
            check_run_dir_shared(store.run_dir)
        executor = executor or _make_executor(cfg, use_ray)
        verify = getattr(executor, "verify", None)
        order = [s.name for s in chain]
        redo: set[str] = set()  # stages outside the selection that wrote a damaged file: redone all the same
        repaired: set[tuple[str, str]] = set()
        committed: dict[str, int] = {}  # shards each stage ran in this invocation, over its visits
        position = 0
        try:
            while position < len(chain):
                spec = chain[position]
                position += 1
                if spec.name not in selected | redo:
                    continue
                if spec.name in forced:
                    store.reset_stage(spec.name)
                    forced = forced - {spec.name}  # once: a stage revisited after a repair resumes
                tables = set(spec.writes) if verify_all else final[spec.name]
                try:
                    summary = _run_stage(spec, cfg, store, found[spec.name], executor, show, verify, tables, committed)
                except ShardHashError as exc:
                    where = locate_shard_file(store, chain, exc.path)
                    if where is None or (exc.path, exc.expected) in repaired:
                        raise
                    repaired.add((exc.path, exc.expected))
                    writer, index = where
                    rel = Path(exc.path).resolve().relative_to(store.run_dir.resolve()).as_posix()
                    log_damaged(rel, writer, index)
                    manifest = store.read_manifest(writer)
                    store.forget_shards(manifest, [index])
                    redo.add(writer)
                    position = order.index(writer)
                    continue
                earlier = summaries.pop(spec.name, None)
                if earlier is not None:  # revisited after a repair
                    summary.seconds += earlier.seconds
                summaries[spec.name] = summary
        finally:
            close = getattr(executor, "close", None)  # model actors / the shared engine kept between stages
            if close is not None:
                close()
    finally:
        if owns_ray:
            from pipeline.ray_runtime import shutdown_ray

            shutdown_ray()
    return [summaries[name] for name in order if name in summaries]


def _run_stage(
    spec: StageSpec, cfg: BaseModel, store: RunStore, inputs, executor, show: bool, verify=None, verify_tables=frozenset(),
    committed: dict[str, int] | None = None,
) -> StageSummary:
    """Run one stage's pending shards. ``committed`` counts the shards each stage ran in this invocation
    (a stage cut short by a damaged input and visited again counts the shards of both visits)."""
    started = time.perf_counter()
    committed = {} if committed is None else committed
    stage_run = _StageRun(spec, cfg, store, inputs, verify_tables)
    jobs = stage_run.plan()
    todo = stage_run.pending(jobs, verify)
    ran_before = committed.get(spec.name, 0)
    summary = StageSummary(stage=spec.name, shards_total=len(jobs), shards_run=ran_before + len(todo))
    summary.shards_skipped = len(jobs) - summary.shards_run
    with StageProgress(spec.name, total=len(jobs), done=summary.shards_skipped, enabled=show) as bar:

        def on_done(job: ShardJob, done: ShardDone | ShardResult, seconds: float) -> None:
            stage_run.commit(job, done, seconds)
            committed[spec.name] = committed.get(spec.name, 0) + 1
            bar.advance(done.rows if isinstance(done, ShardDone) else sum(t.num_rows for t in done.tables.values()))

        try:
            if todo:
                executor.run(spec, stage_run.section, todo, on_done, cfg.run.max_retries)
        finally:
            stage_run.flush()  # a failing stage still records the shards that finished
    stage_run.finish(summary)
    summary.seconds = time.perf_counter() - started
    return summary
