"""Three small stages over real table schemas, used to test the runner without models."""

from __future__ import annotations

import json

import pyarrow as pa
from pydantic import Field

from stages.base import ShardResult, SourcePlan, StageConfig, StageSpec, quarantine_row

CALLS: list[tuple[str, int]] = []
CORPUS_EXTRA_ROWS: list[int] = []  # stands for rows appended to a corpus file between runs


class SrcConfig(StageConfig):
    n_rows: int = Field(10, description="rows")
    shard_size: int = Field(4, description="rows per shard")
    tag: str = Field("a", description="written into every prompt")
    bad_rows: list[int] = Field(default_factory=list, description="rows quarantined while planning")


def src_plan(cfg: SrcConfig) -> SourcePlan:
    rows = list(range(cfg.n_rows)) + CORPUS_EXTRA_ROWS
    good = [i for i in rows if i not in cfg.bad_rows]
    shards = []
    for start in range(0, len(good), cfg.shard_size):
        chunk = good[start : start + cfg.shard_size]
        shards.append(pa.table({"record": [json.dumps({"i": i}) for i in chunk], "source": [f"row {i}" for i in chunk]}))
    quarantine = [quarantine_row(f"row {i}", "bad_row", "listed in bad_rows", {"i": i}) for i in cfg.bad_rows]
    return SourcePlan(shards=shards, quarantine=quarantine)


def src_run(inputs, output, cfg: SrcConfig) -> ShardResult:
    CALLS.append(("src", output.index))
    rows = [json.loads(r) for r in inputs.table("records").column("record").to_pylist()]
    table = pa.Table.from_pylist(
        [{"task_id": f"t{r['i']}", "prompt": cfg.tag, "chosen": f"c{r['i']}", "rejected": f"r{r['i']}"} for r in rows]
    )
    return ShardResult(tables={"pairs": table}, metrics={"rows": len(rows)})


class UpperConfig(StageConfig):
    suffix: str = Field("!", description="appended to chosen")
    fail_shards: list[int] = Field(default_factory=list, description="shards that raise")
    quarantine_ids: list[str] = Field(default_factory=list, description="task ids set aside")
    batch_size: int = Field(8, description="resource field: not in the fingerprint")


def upper_run(inputs, output, cfg: UpperConfig) -> ShardResult:
    CALLS.append(("upper", output.index))
    if output.index in cfg.fail_shards:
        raise RuntimeError(f"boom in shard {output.index}")
    rows = inputs.table("pairs").to_pylist()
    keep = [r for r in rows if r["task_id"] not in cfg.quarantine_ids]
    out = [{**r, "chosen": r["chosen"].upper() + cfg.suffix} for r in keep]
    quarantine = [quarantine_row(r["task_id"], "listed", "in quarantine_ids") for r in rows if r not in keep]
    return ShardResult(tables={"pairs": pa.Table.from_pylist(out)}, quarantine=quarantine)


class SummaryConfig(StageConfig):
    k: int = Field(2, description="group size")


def summary_run(inputs, output, cfg: SummaryConfig) -> ShardResult:
    CALLS.append(("summary", output.index))
    rows = inputs.table("pairs").to_pylist()
    chosen = sorted(r["chosen"] for r in rows)
    table = pa.Table.from_pylist(
        [{"task_id": "all", "prompt": "all", "chosen": chosen[: cfg.k], "rejected": chosen[-cfg.k :]}]
    )
    return ShardResult(tables={"groups": table}, artifacts=[str(output.scratch_dir / "model")])


SPECS = (
    StageSpec(name="src", config_cls=SrcConfig, reads=(), writes=("pairs",), run_shard=src_run, plan=src_plan),
    StageSpec(name="upper", config_cls=UpperConfig, reads=("pairs",), writes=("pairs",), run_shard=upper_run),
    StageSpec(
        name="summary", config_cls=SummaryConfig, reads=("pairs",), writes=("groups",), run_shard=summary_run, fan_in=True
    ),
)


class ModelConfig(StageConfig):
    die_shards: list[int] = Field(default_factory=list, description="shards whose actor process exits mid-shard")
    die_once: bool = Field(False, description="exit only on a shard's first attempt (a marker in its scratch folder)")
    num_actors: int = Field(1, description="actors in the pool")


def model_setup(cfg: ModelConfig) -> str:
    return "loaded"


def model_run(inputs, output, cfg: ModelConfig) -> ShardResult:
    """Copies its input; in ``die_shards`` it kills its own process, as a segfault or the OOM killer would."""
    import os

    marker = output.scratch_dir / "died"
    if output.index in cfg.die_shards and not (cfg.die_once and marker.exists()):
        marker.write_text("x")
        os._exit(1)
    assert inputs.resources == "loaded"
    return ShardResult(tables={"pairs": inputs.table("pairs")})


MODEL_SPEC = StageSpec(
    name="upper", config_cls=ModelConfig, reads=("pairs",), writes=("pairs",), run_shard=model_run,
    setup=model_setup, uses_model=True,
)
