"""The run folder: atomic shard files, one manifest per stage, quarantine tables.

Layout of ``runs/<run>/``::

    config.toml                     resolved config snapshot of the last `run`
    <stage>/part-NNNNN.parquet      the stage's main table, one file per shard
    <stage>/<table>/part-NNNNN.parquet   further tables of the stage (rank: pairs, groups)
    <stage>/_quarantine/part-NNNNN.parquet   rows the shard set aside, merged after the stage into
    quarantine/<stage>.parquet
    <stage>/_quarantine/plan.parquet         rows a source stage set aside while planning its shards
    <stage>/_scratch/NNNNN/          side artifacts of a shard (kept distorted images)
    <stage>/artifacts/               side artifacts of a fan-in stage (train: model/, checkpoints/, train_log.jsonl)
    <stage>/_manifest.json           which shards are done, with what fingerprint, rows and metrics
    report/                          stats.json and plots
    export/                          the Hub-ready dataset folder
    viewer/                          the static HTML viewer (`perpo-pipeline view`)
    .lock                            held by the process writing the run

This module is the only code that knows these names: everything else asks :class:`RunStore` for a path.

A shard counts as done only when the manifest lists it with the expected fingerprint and its files
exist with the sizes recorded at commit (a truncated file is redone); a shard about to be redone is
removed from the manifest first, so a stage counts as complete only when every shard is current.
Files are written to a temporary name, fsynced and renamed before the manifest names them,
so a crash leaves either nothing or a complete shard that the manifest does not yet trust.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas import validate_table
from pipeline.manifest import Manifest, ShardRecord, StagedFile, StagedShard
from stages.lib.files import TEMP_GLOB, atomic_write_bytes, atomic_write_parquet, commit_temp, write_parquet_temp

__all__ = ["ShardRecord", "StagedFile", "StagedShard", "Manifest", "RunStore", "read_files"]

MANIFEST = "_manifest.json"
QUARANTINE_DIR = "_quarantine"
SCRATCH_DIR = "_scratch"
PLAN_QUARANTINE = "plan.parquet"


class RunStore:
    """Reads and writes one run folder; every write is atomic."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    # -- paths ---------------------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def shard_path(self, stage: str, table: str, index: int, main_table: str) -> Path:
        """Main table: ``<stage>/part-NNNNN.parquet``; others: ``<stage>/<table>/part-NNNNN.parquet``."""
        name = f"part-{index:05d}.parquet"
        if table == main_table:
            return self.stage_dir(stage) / name
        return self.stage_dir(stage) / table / name

    def quarantine_shard_path(self, stage: str, index: int) -> Path:
        return self.stage_dir(stage) / QUARANTINE_DIR / f"part-{index:05d}.parquet"

    def scratch_dir(self, stage: str, index: int, fan_in: bool = False) -> Path:
        """Side artifacts of a shard; a fan-in stage's single shard uses ``<stage>/artifacts``."""
        if fan_in:
            return self.stage_dir(stage) / "artifacts"
        return self.stage_dir(stage) / SCRATCH_DIR / f"{index:05d}"

    def drop_empty_scratch(self, scratch: Path) -> None:
        """Remove a finished shard's scratch folder if the stage left nothing in it but the marker."""
        if scratch.is_dir() and {p.name for p in scratch.iterdir()} <= {".fingerprint"}:
            shutil.rmtree(scratch, ignore_errors=True)
            if scratch.parent.name == SCRATCH_DIR and not any(scratch.parent.iterdir()):
                scratch.parent.rmdir()

    def prepare_scratch(self, scratch: Path, fingerprint: str) -> None:
        """Empty ``scratch`` if it holds work for another fingerprint (a changed config must not resume old checkpoints)."""
        marker = scratch / ".fingerprint"
        if scratch.is_dir() and (not marker.is_file() or marker.read_text() != fingerprint):
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            atomic_write_bytes(marker, fingerprint.encode())

    def plan_quarantine_path(self, stage: str) -> Path:
        """Rows a source stage set aside while planning (before any shard ran): ``<stage>/_quarantine/plan.parquet``."""
        return self.stage_dir(stage) / QUARANTINE_DIR / PLAN_QUARANTINE

    @property
    def quarantine_dir(self) -> Path:
        """The merged quarantine tables of the run, one per stage."""
        return self.run_dir / "quarantine"

    def quarantine_path(self, stage: str) -> Path:
        """The stage's merged quarantine table: ``quarantine/<stage>.parquet``."""
        return self.quarantine_dir / f"{stage}.parquet"

    @property
    def report_dir(self) -> Path:
        """The report folder: ``stats.json`` and the plots."""
        return self.run_dir / "report"

    @property
    def stats_path(self) -> Path:
        """The report's ``stats.json``."""
        from pipeline.report import STATS_FILE

        return self.report_dir / STATS_FILE

    @property
    def export_dir(self) -> Path:
        """The default Hub-ready export folder."""
        return self.run_dir / "export"

    @property
    def viewer_dir(self) -> Path:
        """The default static HTML viewer folder (`perpo-pipeline view`)."""
        return self.run_dir / "viewer"

    @property
    def config_path(self) -> Path:
        """The resolved config snapshot of the last `run` (``config.toml``)."""
        return self.run_dir / "config.toml"

    @property
    def lock_path(self) -> Path:
        """The file :meth:`lock` holds."""
        return self.run_dir / ".lock"

    def write_config_snapshot(self, toml_text: str) -> None:
        """Replace ``config.toml`` atomically with ``toml_text``."""
        atomic_write_bytes(self.config_path, toml_text.encode())

    def write_plan_quarantine(self, stage: str, rows: list[dict]) -> None:
        """Write the quarantine ``rows`` a source stage set aside while planning (shard -1); none removes the file."""
        path = self.plan_quarantine_path(stage)
        if rows:
            table = validate_table([{"stage": stage, "shard": -1, **r} for r in rows], "quarantine")
            atomic_write_parquet(path, table)
        else:
            path.unlink(missing_ok=True)

    def quarantined_rows(self, stage: str) -> int:
        """Rows in the stage's merged quarantine table (0 when it has none)."""
        path = self.quarantine_path(stage)
        return pq.read_metadata(path).num_rows if path.is_file() else 0

    def remove_stale_temporaries(self, stage: str) -> int:
        """Delete temporary files a killed writer left in the stage folder; return how many."""
        removed = 0
        for path in list(self.stage_dir(stage).rglob(TEMP_GLOB)):  # listed first: folders are removed whole
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)  # atomic_folder staging (checkpoints, model, torchrun jobs)
            else:
                path.unlink(missing_ok=True)
            removed += 1
        return removed

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run folder; a second writer fails at once with a clear error."""
        import fcntl

        from stages.lib.errors import ConfigError

        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{self.run_dir} is being written by another perpo-pipeline process") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- manifests -----------------------------------------------------------------------------
    def read_manifest(self, stage: str) -> Manifest:
        """Return the stage's manifest, or an empty one if the stage never ran (or its manifest is unreadable)."""
        path = self.stage_dir(stage) / MANIFEST
        if not path.is_file():
            return Manifest(stage=stage)
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError):
            return Manifest(stage=stage)

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_bytes(self.stage_dir(manifest.stage) / MANIFEST, manifest.to_json().encode())

    def damaged_file(self, rec: ShardRecord) -> str | None:
        """Return the first file of ``rec`` that is missing or not the size it was written with, else None."""
        for rel in rec.files:
            path = self.run_dir / rel
            if not path.is_file() or (rel in rec.sizes and path.stat().st_size != rec.sizes[rel]):
                return rel
        return None

    def shard_is_valid(self, stage: str, index: int, fingerprint: str, manifest: Manifest | None = None) -> bool:
        """True if the manifest (``manifest``, else the one on disk) records shard ``index`` with
        ``fingerprint`` and all its files exist with the sizes they were written with."""
        rec = (manifest or self.read_manifest(stage)).shards.get(index)
        return rec is not None and rec.fingerprint == fingerprint and self.damaged_file(rec) is None

    # -- shards --------------------------------------------------------------------------------
    def quarantine_table(self, stage: str, index: int, rows: list[dict]) -> pa.Table | None:
        """The quarantine rows a shard returned, with its stage and index, validated; None when there are none."""
        if not rows:
            return None
        return validate_table([{"stage": stage, "shard": index, **row} for row in rows], "quarantine")

    def stage_shard(
        self, stage: str, index: int, main_table: str, tables: dict[str, pa.Table], quarantine: pa.Table | None
    ) -> StagedShard:
        """Validate a shard's tables and write them under temporary names beside their final paths.

        Runs wherever the shard ran (a Ray worker, given a store on the same run folder): the files
        are complete and fsynced but not yet in place and not recorded; :meth:`commit_staged` (the
        driver) renames them and records the shard. Raises :class:`SchemaError` for a table that does
        not fit its schema (nothing is left behind).
        """
        staged = StagedShard()
        try:
            for table_name, table in sorted(tables.items()):
                table = validate_table(table, table_name)
                path = self.shard_path(stage, table_name, index, main_table)
                staged.tables[table_name] = self._stage_file(path, table)
                staged.rows[table_name] = table.num_rows
            if quarantine is not None and quarantine.num_rows:
                quarantine = validate_table(quarantine, "quarantine")
                staged.quarantine = self._stage_file(self.quarantine_shard_path(stage, index), quarantine)
                staged.quarantined = quarantine.num_rows
        except BaseException:
            self.discard_staged(staged)
            raise
        return staged

    def _stage_file(self, path: Path, table: pa.Table) -> StagedFile:
        tmp, digest = write_parquet_temp(path, table)
        return StagedFile(
            path=str(path.relative_to(self.run_dir)), temp=str(tmp.relative_to(self.run_dir)),
            sha256=digest, size=tmp.stat().st_size,
        )

    def discard_staged(self, staged: StagedShard) -> None:
        """Delete a staged shard's temporaries (it will not be committed)."""
        for item in [*staged.tables.values(), *([staged.quarantine] if staged.quarantine else [])]:
            (self.run_dir / item.temp).unlink(missing_ok=True)

    def commit_staged(
        self,
        manifest: Manifest,
        index: int,
        fingerprint: str,
        staged: StagedShard,
        metrics: dict[str, float],
        artifacts: list[str],
        seconds: float,
        inputs: list[str] | None = None,
        write_manifest: bool = True,
        node: str = "",
    ) -> ShardRecord:
        """Rename a staged shard's files into place, then record it in ``manifest`` (written last).

        With ``write_manifest=False`` the record stays in memory until the caller writes the manifest:
        until then a crash redoes the shard (its files are complete but not trusted).
        """
        for item in staged.tables.values():
            commit_temp(self.run_dir / item.temp, self.run_dir / item.path)
        files = [item.path for item in staged.tables.values()]
        qpath = self.quarantine_shard_path(manifest.stage, index)
        if staged.quarantine is not None:
            commit_temp(self.run_dir / staged.quarantine.temp, qpath)
            files.append(staged.quarantine.path)
        elif qpath.exists():
            qpath.unlink()
        written = [*staged.tables.values(), *([staged.quarantine] if staged.quarantine else [])]
        sizes = {item.path: item.size for item in written}
        hashes = [f"{name}:{item.sha256}" for name, item in sorted(staged.tables.items())]
        record = ShardRecord(
            fingerprint=fingerprint,
            content_hash=hashlib.sha256("|".join(hashes).encode()).hexdigest(),
            rows=dict(staged.rows),
            quarantined=staged.quarantined,
            files=files,
            metrics={k: float(v) for k, v in metrics.items()},
            artifacts=artifacts,
            seconds=round(seconds, 3),
            completed_at=time.time(),
            sizes=sizes,
            hashes={item.path: item.sha256 for item in written},
            inputs=list(inputs or []),
            node=node,
        )
        manifest.shards[index] = record
        if write_manifest:
            self.write_manifest(manifest)
        return record

    def commit_shard(
        self,
        manifest: Manifest,
        index: int,
        fingerprint: str,
        tables: dict[str, pa.Table],
        main_table: str,
        quarantine: pa.Table | None,
        metrics: dict[str, float],
        artifacts: list[str],
        seconds: float,
        inputs: list[str] | None = None,
        write_manifest: bool = True,
    ) -> ShardRecord:
        """Validate and write a shard's tables atomically, then record it: :meth:`stage_shard` then :meth:`commit_staged`."""
        staged = self.stage_shard(manifest.stage, index, main_table, tables, quarantine)
        return self.commit_staged(
            manifest, index, fingerprint, staged, metrics, artifacts, seconds, inputs, write_manifest=write_manifest
        )

    def drop_shards_from(self, manifest: Manifest, first_index: int) -> None:
        """Forget and delete shards with index >= ``first_index`` (the stage now plans fewer shards)."""
        self.forget_shards(manifest, [i for i in manifest.shards if i >= first_index])

    def forget_shards(self, manifest: Manifest, indices: list[int]) -> None:
        """Remove shards ``indices`` from ``manifest`` and delete their files (they are about to be redone,
        so their old output must not count as done meanwhile); the manifest is written once."""
        for index in indices:
            rec = manifest.shards.pop(index, None)
            for rel in rec.files if rec else []:
                (self.run_dir / rel).unlink(missing_ok=True)
        self.write_manifest(manifest)

    def reset_stage(self, stage: str) -> None:
        """Delete everything a stage wrote (used by --force)."""
        shutil.rmtree(self.stage_dir(stage), ignore_errors=True)
        self.quarantine_path(stage).unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------
    def table_files(self, stage: str, table: str, main_table: str) -> list[Path]:
        """Return the finished shard files of ``table`` written by ``stage``, in shard order."""
        manifest = self.read_manifest(stage)
        paths = []
        for index in sorted(manifest.shards):
            path = self.shard_path(stage, table, index, main_table)
            if path.is_file():
                paths.append(path)
        return paths

    def read_shard(self, stage: str, table: str, index: int, main_table: str, columns: list[str] | None = None) -> pa.Table:
        """Read one shard's table (all columns unless ``columns`` is given)."""
        return pq.read_table(self.shard_path(stage, table, index, main_table), columns=columns)

    def read_table(self, stage: str, table: str, main_table: str, columns: list[str] | None = None) -> pa.Table:
        """Concatenate every finished shard of ``table``; an empty table with the schema if there is none."""
        return read_files(table, self.table_files(stage, table, main_table), columns)

    def merge_quarantine(self, stage: str) -> int:
        """Merge the stage's per-shard quarantine files into ``quarantine/<stage>.parquet``; return the row count."""
        manifest = self.read_manifest(stage)
        plan = self.plan_quarantine_path(stage)
        parts = [plan] if plan.is_file() else []
        parts += [
            self.quarantine_shard_path(stage, i)
            for i in sorted(manifest.shards)
            if self.quarantine_shard_path(stage, i).is_file()
        ]
        target = self.quarantine_path(stage)
        if not parts:
            target.unlink(missing_ok=True)
            return 0
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        atomic_write_parquet(target, validate_table(table, "quarantine"))
        return table.num_rows

    def read_quarantine(self) -> pa.Table:
        """Every quarantined row of the run, all stages."""
        from data_schemas import empty_table

        files = sorted(self.quarantine_dir.glob("*.parquet")) if self.quarantine_dir.is_dir() else []
        if not files:
            return empty_table("quarantine")
        return pa.concat_tables([pq.read_table(f) for f in files])


def read_files(
    table: str, paths: list[Path], columns: list[str] | None = None, sha256: dict[str, str] | None = None
) -> pa.Table:
    """Concatenate the Parquet shard files ``paths`` of ``table`` in order; an empty table of its schema if none.

    ``sha256`` maps a path (as given) to the hash its manifest recorded: such a file is checked before it is
    decoded and a mismatch raises :class:`pipeline.shard_check.ShardHashError` (files it does not name are read
    unchecked: shards recorded before hashes were kept).
    """
    from data_schemas import schema_for
    from pipeline.shard_check import read_checked

    if not paths:
        schema = schema_for(table)
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema.empty_table()
    expected = sha256 or {}
    return pa.concat_tables([read_checked(p, expected.get(str(p)), columns=columns) for p in paths])
