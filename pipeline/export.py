"""Export a run's ranked data as a Hugging Face Hub-ready dataset folder.

Layout written (atomically, with :func:`stages.lib.files.atomic_folder`: built in a hidden sibling
folder, then renamed into place)::

    README.md                                   dataset card: YAML configs + features, how the data was made
    data/<config>/train-00000-of-0000N.parquet  one folder per config: listwise, pairs, groups
    plots/*.png                                 the report's plots, shown in the card

Every config carries the task's image embedded (``images``: a list with one ``Image``, joined back
from ``tasks`` by ``task_id``) and the prompt as a conversational message list with one
``{"type": "image"}`` placeholder, the format TRL's vision DPO collator expects:

- ``pairs``: ``images``, ``prompt``, ``chosen`` / ``rejected`` (one assistant message each), rewards,
  margin, origins: ``DPOTrainer(train_dataset=load_dataset(folder, "pairs", split="train"))`` as is.
- ``listwise``: ``images``, ``prompt``, ``responses`` (plain strings, best first), ``rewards`` (null for
  unscored caption lists), ``origins``, log-probs and reference log-probs.
- ``groups``: ``images``, ``prompt``, ``chosen`` / ``rejected`` lists of plain strings and their rewards.

Message content items always have the keys ``type`` and ``text`` (``text`` null for the image
placeholder) so that every row has one Arrow type; TRL only treats an item as an unfilled image
placeholder when it has no ``image`` key, so none is written.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_schemas.features import hf_features, with_hf_metadata
from data_schemas.images import IMAGE_STRUCT
from data_schemas.tables import empty_table, validate_table
from stages.lib.errors import ConfigError, PublishError, SchemaError
from stages.lib.files import atomic_folder, remove_temporaries_of

__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIG",
    "EXPORT_SCHEMAS",
    "CardInfo",
    "user_prompt",
    "assistant_message",
    "yaml_features",
    "export_dataset",
    "is_export_folder",
]

MAX_SHARD_BYTES = 500 * 1024**2  # uncompressed, as `datasets` shards push_to_hub
MAX_ROW_GROUP_BYTES = 100 * 1024**2  # uncompressed, as `datasets` sizes row groups

_CONTENT = pa.struct([pa.field("type", pa.string()), pa.field("text", pa.string())])
MESSAGES = pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.list_(_CONTENT))]))
_IMAGES = pa.list_(IMAGE_STRUCT)
_FLOATS = pa.list_(pa.float64())
_STRINGS = pa.list_(pa.string())
_KEYS = [pa.field("task_id", pa.string()), pa.field("task_type", pa.string())]

EXPORT_SCHEMAS: dict[str, pa.Schema] = {
    "listwise": with_hf_metadata(
        pa.schema(
            [pa.field("images", _IMAGES), pa.field("prompt", MESSAGES), pa.field("responses", _STRINGS),
             pa.field("rewards", _FLOATS), pa.field("origins", _STRINGS), pa.field("logprob_sums", _FLOATS),
             pa.field("n_tokens", pa.list_(pa.int32())), pa.field("ref_logps", _FLOATS),
             pa.field("ref_n_tokens", pa.list_(pa.int32())), *_KEYS]
        )
    ),
    "pairs": with_hf_metadata(
        pa.schema(
            [pa.field("images", _IMAGES), pa.field("prompt", MESSAGES), pa.field("chosen", MESSAGES),
             pa.field("rejected", MESSAGES), pa.field("chosen_reward", pa.float64()),
             pa.field("rejected_reward", pa.float64()), pa.field("margin", pa.float64()),
             pa.field("chosen_origin", pa.string()), pa.field("rejected_origin", pa.string()), *_KEYS]
        )
    ),
    "groups": with_hf_metadata(
        pa.schema(
            [pa.field("images", _IMAGES), pa.field("prompt", MESSAGES), pa.field("chosen", _STRINGS),
             pa.field("rejected", _STRINGS), pa.field("chosen_rewards", _FLOATS),
             pa.field("rejected_rewards", _FLOATS), *_KEYS]
        )
    ),
}
CONFIGS: tuple[str, ...] = tuple(EXPORT_SCHEMAS)
DEFAULT_CONFIG = "pairs"  # what `load_dataset(repo)` gives without a config name: TRL-ready pairs


class CardInfo(BaseModel):
    """What the dataset card says about how the data was made (the CLI fills it from the run's config)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    repo_id: str | None = Field(None, description="Hub repo id used in the loading snippet (else a local path).")
    pretty_name: str = Field("VLM preference data (PerPO pipeline)", description="Title of the card.")
    model: str = Field("unknown", description="Policy model that sampled the responses.")
    samples_per_prompt: int | None = Field(None, alias="N", ge=1, description="Responses sampled per prompt (N).")
    rewards: dict[str, str] | list[str] = Field(
        default_factory=list, description="Reward per task type, or reward names."
    )
    perturbations: list[str] = Field(default_factory=list, description="POVID perturbations applied.")
    counts: dict[str, int | float] = Field(default_factory=dict, description="Run counters shown in the card.")
    license: str = Field("other", description="License identifier for the card's YAML (e.g. cc-by-4.0).")
    plots: list[Path] = Field(default_factory=list, description="PNG files copied into plots/ and shown in the card.")
    eval_table: str | None = Field(
        None, description="Markdown table of the held-out eval (starting policy vs trained model), shown in the card."
    )
    examples: list[Path] = Field(
        default_factory=list, description="PNG example lists (image with boxes, ranked answers, rewards) shown as a gallery."
    )


def user_prompt(text: str) -> list[dict[str, Any]]:
    """Return the conversational prompt: one user message holding the image placeholder then the text."""
    return [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": text}]}]


def assistant_message(text: str) -> list[dict[str, Any]]:
    """Return a completion as one assistant message with one text item."""
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def yaml_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """Return ``schema``'s features in the dataset card's YAML form (what ``Features._to_yaml_list`` writes)."""

    def inner(feature: dict[str, Any]) -> dict[str, Any]:
        kind = feature.get("_type")
        if kind == "Value":
            return {"dtype": feature["dtype"]}
        if kind == "Image":
            return {"dtype": "image"}
        if kind == "List":
            item = inner(feature["feature"])
            if list(item) == ["dtype"]:
                return {"list": item["dtype"]}
            if list(item) == ["struct"]:
                return {"list": item["struct"]}
            return {"list": item}
        return {"struct": [{"name": name, **inner(f)} for name, f in feature.items()]}

    return [{"name": name, **inner(f)} for name, f in hf_features(schema).items()]


# --- tables


def _task_positions(tasks: pa.Table, task_ids: pa.ChunkedArray, config: str) -> pa.Array:
    """Return each row's position in ``tasks``; a task_id absent from ``tasks`` is a :class:`SchemaError`."""
    positions = pc.index_in(task_ids, value_set=tasks["task_id"])
    if positions.null_count:
        missing = pc.filter(task_ids, pc.is_null(positions)).to_pylist()
        raise SchemaError(
            f"export: {len(missing)} {config} row(s) refer to task_id(s) absent from tasks (first: {missing[0]!r}); "
            "export the tasks table of the same run"
        )
    return positions


def _join_tasks(tasks: pa.Table, task_ids: pa.ChunkedArray, config: str) -> tuple[pa.Array, pa.Array]:
    """Return (``images`` list column, ``task_type`` column) for ``task_ids``."""
    positions = _task_positions(tasks, task_ids, config)
    images = tasks["image"].take(positions).combine_chunks()
    offsets = pa.array(range(len(task_ids) + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, images, type=_IMAGES), tasks["task_type"].take(positions)


def _messages(values: list[Any], make: Callable[[str], list[dict[str, Any]]]) -> pa.Array:
    return pa.array([make(v) for v in values], type=MESSAGES)


def _export_table(config: str, table: pa.Table, tasks: pa.Table) -> pa.Table:
    """Return ``table`` (a run's listwise, pairs or groups) in the exported form of ``config``."""
    images, task_types = _join_tasks(tasks, table["task_id"], config)
    columns: dict[str, Any] = {"images": images, "prompt": _messages(table["prompt"].to_pylist(), user_prompt)}
    if config == "pairs":
        columns["chosen"] = _messages(table["chosen"].to_pylist(), assistant_message)
        columns["rejected"] = _messages(table["rejected"].to_pylist(), assistant_message)
    columns["task_type"] = task_types
    schema = EXPORT_SCHEMAS[config]
    return pa.Table.from_arrays(
        [columns[name] if name in columns else table[name] for name in schema.names], schema=schema
    )


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Per-leaf options as ``datasets`` writes them: embedded image bytes uncompressed and PLAIN, the rest snappy."""

    def leaves(path: str, dtype: pa.DataType) -> list[str]:
        if pa.types.is_struct(dtype):
            return [leaf for f in dtype for leaf in leaves(f"{path}.{f.name}", f.type)]
        if pa.types.is_list(dtype):
            return leaves(f"{path}.list.element", dtype.value_type)
        return [path]

    compression, dictionary, encoding = {}, [], {}
    for field in schema:
        for leaf in leaves(field.name, field.type):
            if field.name == "images":
                compression[leaf], encoding[leaf] = "none", "PLAIN"
            else:
                compression[leaf] = "snappy"
                dictionary.append(leaf)
    return {"compression": compression, "use_dictionary": dictionary, "column_encoding": encoding}


def _write_config(config: str, table: pa.Table, tasks: pa.Table, folder: Path, max_shard_bytes: int) -> int:
    """Write ``table``'s exported form as ``train-NNNNN-of-MMMMM.parquet`` shards of about ``max_shard_bytes``.

    Rows are converted one shard at a time: images are copied into every row that uses them (each
    row is self-contained, as TRL and the Hub viewer expect), so only one shard is held in memory.
    Returns the exported rows' Arrow size in bytes (the split's ``num_bytes`` in the card).
    """
    num_bytes = 0
    image_sizes = pc.binary_length(pc.struct_field(tasks["image"], "bytes"))
    positions = _task_positions(tasks, table["task_id"], config)
    estimate = table.nbytes + (pc.sum(image_sizes.take(positions)).as_py() or 0)
    n_shards = max(1, math.ceil(estimate / max_shard_bytes))
    rows_per_shard = math.ceil(table.num_rows / n_shards)
    folder.mkdir(parents=True)
    for i in range(n_shards):
        shard = _export_table(config, table.slice(i * rows_per_shard, rows_per_shard), tasks)
        num_bytes += shard.nbytes
        pq.write_table(
            shard,
            folder / f"train-{i:05d}-of-{n_shards:05d}.parquet",
            row_group_size=max(1, shard.num_rows * MAX_ROW_GROUP_BYTES // max(shard.nbytes, 1)),
            use_content_defined_chunking=True,  # re-uploads of a regenerated export dedupe on the Hub's Xet storage
            write_page_index=True,
            **_parquet_options(shard.schema),
        )
    return num_bytes


# --- card


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _card_yaml(rows: dict[str, int], num_bytes: dict[str, int], info: CardInfo) -> dict[str, Any]:
    exported = [c for c in CONFIGS if rows[c]]
    return {
        "license": info.license,
        "pretty_name": info.pretty_name,
        "task_categories": ["image-text-to-text"],
        "tags": ["dpo", "preference", "vision-language", "perpo", "synthetic"],
        "size_categories": [_size_category(max(rows.values()))],
        "configs": [
            {
                "config_name": c,
                **({"default": True} if c == DEFAULT_CONFIG else {}),
                "data_files": [{"split": "train", "path": f"data/{c}/train-*.parquet"}],
            }
            for c in exported
        ],
        "dataset_info": [
            {
                "config_name": c,
                "features": yaml_features(EXPORT_SCHEMAS[c]),
                # datasets ignores a split entry without num_bytes (and warns on every load)
                "splits": [{"name": "train", "num_bytes": num_bytes[c], "num_examples": rows[c]}],
            }
            for c in exported
        ],
    }


def _card_body(rows: dict[str, int], info: CardInfo, plots: list[str], examples: list[str] | None = None) -> str:
    source = info.repo_id or "path/to/this/folder"
    if isinstance(info.rewards, dict):
        rewards = ", ".join(f"{task_type}: {reward}" for task_type, reward in info.rewards.items())
    else:
        rewards = ", ".join(info.rewards)
    counts = {**info.counts, **{f"{c} rows": n for c, n in rows.items()}}
    lines = [
        f"# {info.pretty_name}",
        "",
        "Preference data for vision-language models, made by perpo-pipeline: responses sampled from the policy, "
        "scored with discriminative rewards against ground truth, ranked per prompt.",
        "",
        "## How it was made",
        "",
        f"- Policy model: `{info.model}`",
        f"- Responses sampled per prompt (N): {info.samples_per_prompt if info.samples_per_prompt else 'n/a'}",
        f"- Rewards: {rewards or 'n/a'}",
        f"- Perturbations (POVID): {', '.join(info.perturbations) or 'none'}",
        "- Ranking: reward (higher first), ties by origin then log-prob; duplicates removed; lists with too "
        "little reward spread dropped. Caption lists have no reward (null) and are ordered by origin.",
        "",
        "| count | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in counts.items()),
        "",
        "## Configs",
        "",
        "- `pairs` (default): `images`, `prompt`, `chosen`, `rejected` in TRL's conversational vision format, plus "
        "`chosen_reward`, `rejected_reward`, `margin` (null for caption pairs), origins, `task_id`, `task_type`.",
        "- `listwise`: `images`, `prompt`, `responses` (plain strings, best first), `rewards`, `origins`, "
        "`logprob_sums`, `ref_logps` (reference-model log-probs, when computed).",
        "- `groups`: `images`, `prompt`, `chosen` and `rejected` lists of plain strings (top-k vs bottom-k) "
        "and their rewards.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'pairs = load_dataset("{source}", "pairs", split="train")',
        f'lists = load_dataset("{source}", "listwise", split="train")',
        "",
        "# TRL: the pairs config goes to DPOTrainer unchanged (a vision-language model and its processor).",
        "from trl import DPOConfig, DPOTrainer",
        "trainer = DPOTrainer(",
        "    model=model, args=DPOConfig(max_length=None), train_dataset=pairs, processing_class=processor",
        ")",
        "```",
    ]
    if examples:
        lines += ["", "## Example lists", "",
                  "A few ranked lists, best response first: the image with its ground-truth boxes (dashed) and each "
                  "response's parsed boxes, the rewards as bars; the colours are named under each picture.", "", *(f"![{Path(p).stem}]({p})" for p in examples)]
    if info.eval_table:
        lines += [
            "", "## Evaluation", "",
            "The policy before training and the model trained on this data, answering held-out tasks (never in "
            "the data above) and scored with the same rewards:", "", info.eval_table,
        ]
    if plots:
        lines += ["", "## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots)]
    license_note = f"`{info.license}`; images and ground truth keep the license of the source corpus."
    lines += ["", "## License", "", license_note, ""]
    return "\n".join(lines)


# --- entry point


def is_export_folder(folder: Path) -> bool:
    """True if ``folder`` holds an export (a dataset card and a data folder)."""
    return (folder / "README.md").is_file() and (folder / "data").is_dir()


def _input(tables: dict[str, pa.Table], name: str) -> pa.Table:
    table = tables.get(name)
    return validate_table(table, name) if table is not None else empty_table(name)


def export_dataset(
    tables: dict[str, pa.Table], out_dir: Path, card_info: dict[str, Any], *, max_shard_bytes: int = MAX_SHARD_BYTES
) -> Path:
    """Write the Hub-ready folder ``out_dir`` from a run's ``tasks`` (with images), ``listwise``, ``pairs``, ``groups``.

    Returns ``out_dir``. The folder is built beside it and renamed into place, so it is either the
    previous export or the complete new one, never a mix. A config with no rows is left out of the
    card. Raises :class:`ConfigError` for bad ``card_info`` or an ``out_dir`` that holds something other
    than an export, :class:`PublishError` when there is nothing to export, :class:`SchemaError` when
    a row refers to a task that ``tasks`` lacks.
    """
    try:
        info = CardInfo.model_validate(card_info)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"export card_info.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    for plot in [*info.plots, *info.examples]:
        if not plot.is_file():
            raise ConfigError(f"export card_info.plots: {plot} is not a file; run the report first or drop it")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_export_folder(out_dir))):
        raise ConfigError(f"export: {out_dir} exists and is not a previous export; choose an empty or new folder")

    tasks = _input(tables, "tasks")
    sources = {c: _input(tables, c) for c in CONFIGS}
    for config, table in sources.items():
        _task_positions(tasks, table["task_id"], config)  # fail before anything is written
    rows = {c: t.num_rows for c, t in sources.items()}
    if not rows["listwise"]:
        raise PublishError(
            "export: nothing to export, the run has no listwise rows; see report/stats.json for what was filtered"
        )

    remove_temporaries_of(out_dir)  # a killed export's dataset-sized staging copy (callers hold the run lock)
    with atomic_folder(out_dir) as tmp:
        num_bytes = {
            config: _write_config(config, table, tasks, tmp / "data" / config, max_shard_bytes)
            for config, table in sources.items()
            if table.num_rows
        }
        plots = []
        for plot in info.plots:
            (tmp / "plots").mkdir(exist_ok=True)
            shutil.copy2(plot, tmp / "plots" / plot.name)
            plots.append(f"plots/{plot.name}")
        examples = []
        for example in info.examples:
            (tmp / "plots" / "examples").mkdir(parents=True, exist_ok=True)
            shutil.copy2(example, tmp / "plots" / "examples" / example.name)
            examples.append(f"plots/examples/{example.name}")
        front = yaml.safe_dump(_card_yaml(rows, num_bytes, info), sort_keys=False, allow_unicode=True)
        (tmp / "README.md").write_text(f"---\n{front}---\n\n{_card_body(rows, info, plots, examples)}", encoding="utf-8")
    return out_dir
