"""What a run folder holds, per stage: shards done / planned, rows per table, quarantined rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.eval_report import eval_table_text
from pipeline.store import RunStore
from stages import registry

__all__ = ["StageStatus", "run_status", "format_status", "format_run_status"]

NODE_ID_CHARS = 12  # of Ray's 56-hex-digit node id: enough to tell nodes apart (our choice)


@dataclass
class StageStatus:
    """One stage's state in a run folder."""

    stage: str
    shards_done: int = 0
    shards_total: int | None = None
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    artifacts: list[str] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> shards it ran ("" in-process)
    damaged: list[str] = field(default_factory=list)  # shard files missing, resized or (verify) not matching, with why


def run_status(run_dir: Path, verify: bool = False) -> list[StageStatus]:
    """Read every stage's manifest and quarantine file; stages that never ran show 0 shards.

    A recorded shard file that is missing or not its recorded size is listed as damaged (cheap: no file is
    read); with ``verify`` every file is also hashed against its recorded sha256 (reads the run folder).
    """
    from pipeline.shard_check import mismatched_files

    store = RunStore(run_dir)
    out = []
    for name in registry.stage_names():
        manifest = store.read_manifest(name)
        status = StageStatus(stage=name, shards_total=manifest.n_shards)
        valid = [i for i in manifest.shards if manifest.n_shards is None or i < manifest.n_shards]
        status.shards_done = len(valid)
        for i in valid:
            rec = manifest.shards[i]
            for table, count in rec.rows.items():
                status.rows[table] = status.rows.get(table, 0) + count
            status.artifacts.extend(rec.artifacts)
            status.nodes[rec.node] = status.nodes.get(rec.node, 0) + 1
            resized = store.damaged_file(rec)
            if resized:
                status.damaged.append(f"{resized} (missing or resized; the next run redoes its shard)")
            elif verify:
                bad = mismatched_files({str(store.run_dir / rel): sha for rel, sha in rec.hashes.items()})
                status.damaged += [
                    f"{Path(p).relative_to(store.run_dir).as_posix()} (sha256 mismatch; the next run that reads it, "
                    "or `run --verify`, redoes its shard)" for p in bad
                ]
        status.quarantined = store.quarantined_rows(name)
        out.append(status)
    return out


def format_run_status(run_dir: Path, verify: bool = False) -> str:
    """The status of a run folder: its stages and eval table, or for a multi-round run each round's stages and
    the table over rounds (:mod:`pipeline.rounds`); ``verify`` hashes every shard file (:func:`run_status`)."""
    from pipeline.rounds import format_rounds, round_dirs, rounds_summary

    rounds = round_dirs(run_dir)
    if not rounds:
        return format_status(run_dir, run_status(run_dir, verify))
    parts = [format_status(folder, run_status(folder, verify), with_eval=False) for folder in rounds]
    return "\n\n".join([*parts, format_rounds(rounds_summary(run_dir))])


def format_status(run_dir: Path, statuses: list[StageStatus], with_eval: bool = True) -> str:
    """Render the status as an aligned text table followed by where the report and export are, and the eval table.

    When the run's shards ran on more than one Ray node, each stage also lists its nodes (the first
    characters of the node id, as ``ray list nodes`` shows it) with the number of shards each ran.
    """
    lines = [f"run: {run_dir}", f"{'stage':<10} {'shards':>9}  {'quarantined':>11}  rows"]
    several_nodes = len({node for st in statuses for node in st.nodes if node}) > 1
    for st in statuses:
        total = "-" if st.shards_total is None else str(st.shards_total)
        rows = ", ".join(f"{t}={n}" for t, n in sorted(st.rows.items())) or "-"
        lines.append(f"{st.stage:<10} {f'{st.shards_done}/{total}':>9}  {st.quarantined:>11}  {rows}")
        ran_on = {node: n for node, n in st.nodes.items() if node}
        if several_nodes and ran_on:
            shown = ", ".join(f"{node[:NODE_ID_CHARS]} ({n})" for node, n in sorted(ran_on.items()))
            lines.append(f"{'':<10} nodes: {shown}")
        for artifact in st.artifacts:
            lines.append(f"{'':<10} artifact: {artifact}")
        for rel in st.damaged:
            lines.append(f"{'':<10} damaged: {rel}")
    store = RunStore(run_dir)
    for label, path in (
        ("quarantine", store.quarantine_dir),
        ("report", store.stats_path),
        ("export", store.export_dir),
        ("viewer", store.viewer_dir / "index.html"),
    ):
        if path.exists():
            lines.append(f"{label}: {path}")
    table = eval_table_text(run_dir) if with_eval else None
    if table:
        lines += ["", table]
    return "\n".join(lines)
