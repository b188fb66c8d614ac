"""The tables of a run, their Arrow schemas and the validation every writer calls.

Bump :data:`SCHEMA_VERSION` whenever a schema changes: it is part of every shard's fingerprint,
so a new version redoes the shards written under the old one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, get_args

import pyarrow as pa

from data_schemas.features import with_hf_metadata
from data_schemas.images import IMAGE_STRUCT
from stages.lib.errors import SchemaError

__all__ = [
    "SCHEMA_VERSION",
    "TaskType",
    "Origin",
    "TASK_TYPES",
    "ORIGINS",
    "TASKS",
    "SPLITS",
    "CANDIDATES",
    "SCORED",
    "LISTWISE",
    "PAIRS",
    "GROUPS",
    "QUARANTINE",
    "MODEL",
    "EVAL",
    "TABLES",
    "schema_for",
    "empty_table",
    "validate_table",
]

SCHEMA_VERSION: Final[str] = "3"  # 3: candidates.token_ids, listwise.response_token_ids

TaskType = Literal["grounding", "ocr", "vqa", "caption"]
TASK_TYPES: Final[tuple[str, ...]] = get_args(TaskType)


class Origin(StrEnum):
    """Where a candidate response came from (the ``origin`` column of candidates and scored)."""

    POLICY = "policy"  # sampled from the policy model (sample stage)
    DISTORTED_IMAGE = "distorted_image"  # the policy's answer on a distorted copy of the image (perturb)
    HALLUCINATION = "hallucination"  # the ground truth with injected errors (perturb)
    GROUND_TRUTH = "ground_truth"  # the annotation itself (sample, include_ground_truth)
    PRIOR_ANSWER = "prior_answer"  # the model's answer with the ground truth in its prompt (perturb; LeanPO's winner)


ORIGINS: Final[tuple[str, ...]] = tuple(o.value for o in Origin)
Split = Literal["train", "eval"]
SPLITS: Final[tuple[str, ...]] = get_args(Split)  # a null split reads as "train"

_BOX = pa.list_(pa.float64())

TASKS = with_hf_metadata(
    pa.schema(
        [
            pa.field("task_id", pa.string(), nullable=False),
            pa.field("task_type", pa.string(), nullable=False),
            # Nullable in the schema because `datasets` only decodes a field typed exactly as its Image
            # feature; validate_table still refuses a null image (REQUIRED_VALUES).
            pa.field("image", IMAGE_STRUCT),
            pa.field("image_sha256", pa.string(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("answer", pa.string()),  # ground-truth text (for grounding: boxes as text)
            pa.field("boxes", pa.list_(_BOX)),  # xyxy pixel boxes
            pa.field("answers", pa.list_(pa.string())),  # all annotator answers (VQA)
            pa.field("choices", pa.list_(pa.string())),  # multiple-choice options, in letter order
            pa.field("source", pa.string()),  # where the row came from (file, line, annotation id)
            pa.field("meta", pa.string()),  # JSON object, adapter-specific
            pa.field("split", pa.string()),  # "train" | "eval" (held out: only the eval stage reads it); null = train
        ]
    )
)

_CANDIDATE_FIELDS = [
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("cand_id", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("n_tokens", pa.int32()),
    pa.field("logprob_sum", pa.float64()),
    pa.field("finish_reason", pa.string()),  # "stop" | "length" | "error" | "annotation" | "injected"
    pa.field("model", pa.string()),
    pa.field("sample_index", pa.int32()),
    pa.field("seed", pa.int64()),
    pa.field("sampling", pa.string()),  # JSON: temperature, top_p, max_tokens, n, backend
    pa.field("distortion", pa.string()),  # JSON: how a perturbed candidate was made, else null
    # the ids a sampled response was generated as (stop token included); null for the candidates we write
    pa.field("token_ids", pa.list_(pa.int32())),
]

CANDIDATES = pa.schema(_CANDIDATE_FIELDS)

SCORED = pa.schema(
    _CANDIDATE_FIELDS
    + [
        pa.field("reward", pa.float64()),  # in [0, 1]; null when the task type has no reward (caption)
        pa.field("reward_kind", pa.string()),
        pa.field("parse_ok", pa.bool_()),
        pa.field("detail", pa.string()),  # JSON: parsed boxes, IoU per box, edit distance, reason
    ]
)

LISTWISE = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("task_type", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("responses", pa.list_(pa.string()), nullable=False),  # best first
        pa.field("rewards", pa.list_(pa.float64())),
        pa.field("origins", pa.list_(pa.string())),
        pa.field("cand_ids", pa.list_(pa.string())),
        pa.field("logprob_sums", pa.list_(pa.float64())),
        pa.field("n_tokens", pa.list_(pa.int32())),
        # per response: its sampled token ids (what reference and train score), null for the ones we wrote
        pa.field("response_token_ids", pa.list_(pa.list_(pa.int32()))),
        pa.field("ref_logps", pa.list_(pa.float64())),  # filled by the reference stage
        pa.field("ref_n_tokens", pa.list_(pa.int32())),
        # POVID's image term under the reference, per response ([reference] povid_image_term)
        pa.field("ref_povid_logps", pa.list_(pa.float64())),
    ]
)

PAIRS = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("chosen_reward", pa.float64()),
        pa.field("rejected_reward", pa.float64()),
        pa.field("margin", pa.float64()),
        pa.field("chosen_origin", pa.string()),
        pa.field("rejected_origin", pa.string()),
    ]
)

GROUPS = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.list_(pa.string()), nullable=False),
        pa.field("rejected", pa.list_(pa.string()), nullable=False),
        pa.field("chosen_rewards", pa.list_(pa.float64())),
        pa.field("rejected_rewards", pa.list_(pa.float64())),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row_ref", pa.string(), nullable=False),  # task_id, cand_id or source location
        pa.field("reason", pa.string(), nullable=False),  # short machine-readable reason
        pa.field("message", pa.string()),  # human-readable explanation
        pa.field("record", pa.string()),  # JSON of the offending input (images elided)
    ]
)

# The train stage's output: where the trained model is and a digest of its weights, so a stage that
# reads the model (eval) is redone exactly when the weights change.
MODEL = pa.schema(
    [
        pa.field("model_dir", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("base_model", pa.string()),
        pa.field("loss", pa.string()),
        pa.field("steps", pa.int64()),
    ]
)

# The eval stage's output: one row per (model, held-out task, decoding, sample).
EVAL = pa.schema(
    [
        pa.field("model_role", pa.string(), nullable=False),  # "start" (the policy before training) | "trained"
        pa.field("model", pa.string()),
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("task_type", pa.string(), nullable=False),
        pa.field("decoding", pa.string(), nullable=False),  # "greedy" | "sample"
        pa.field("sample_index", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("n_tokens", pa.int32()),
        pa.field("reward", pa.float64()),
        pa.field("reward_kind", pa.string()),
        pa.field("parse_ok", pa.bool_()),
        pa.field("metrics", pa.string()),  # JSON: the task type's extra metrics (iou, edit_similarity, anls, accuracy)
    ]
)

TABLES: Final[dict[str, pa.Schema]] = {
    "tasks": TASKS,
    "eval_tasks": TASKS,  # the held-out split, written by ingest beside ``tasks``
    "candidates": CANDIDATES,
    "scored": SCORED,
    "listwise": LISTWISE,
    "pairs": PAIRS,
    "groups": GROUPS,
    "quarantine": QUARANTINE,
    "model": MODEL,
    "eval": EVAL,
}


# Columns that must hold a value although their Arrow field is nullable (see TASKS.image).
REQUIRED_VALUES: Final[dict[str, tuple[str, ...]]] = {"tasks": ("image",), "eval_tasks": ("image",)}


def schema_for(table_name: str) -> pa.Schema:
    """Return the Arrow schema of ``table_name``; unknown names raise :class:`SchemaError`."""
    try:
        return TABLES[table_name]
    except KeyError:
        raise SchemaError(f"unknown table {table_name!r}; available: {', '.join(TABLES)}") from None


def empty_table(table_name: str) -> pa.Table:
    """Return a zero-row table with the schema of ``table_name``."""
    return schema_for(table_name).empty_table()


def validate_table(table: pa.Table | list[dict], table_name: str) -> pa.Table:
    """Return ``table`` conformed to the schema of ``table_name`` (columns ordered, types cast).

    Accepts a ``pa.Table`` or a list of row dicts; optional (nullable) columns left out are filled with
    nulls. Raises :class:`SchemaError` naming the missing or
    unexpected columns, a column that cannot be cast, or a null in a non-nullable column. Never
    returns a table that differs from the schema.
    """
    schema = schema_for(table_name)
    if isinstance(table, list):
        names = set(schema.names)
        for i, row in enumerate(table):
            extra = set(row) - names
            if extra:
                raise SchemaError(f"{table_name}: row {i} has unexpected columns {sorted(extra)}")
        try:
            table = pa.Table.from_pylist(table, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise SchemaError(f"{table_name}: rows do not fit the schema: {exc}") from exc
    if table.num_rows == 0 and not table.column_names:  # pa.Table.from_pylist([]) has no columns
        return schema.empty_table()
    missing = [f.name for f in schema if f.name not in table.column_names and not f.nullable]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing or extra:
        raise SchemaError(
            f"{table_name}: columns do not match the schema (missing: {missing or 'none'}, "
            f"unexpected: {extra or 'none'}); columns present: {table.column_names}"
        )
    columns = []
    for field in schema:
        if field.name not in table.column_names:  # an optional column the writer left out: all nulls
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table.column(field.name)
        if (not field.nullable or field.name in REQUIRED_VALUES.get(table_name, ())) and col.null_count:
            raise SchemaError(f"{table_name}: column {field.name!r} has {col.null_count} null value(s) but is required")
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{table_name}: column {field.name!r} has type {col.type}, expected {field.type}: {exc}"
                ) from exc
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)
