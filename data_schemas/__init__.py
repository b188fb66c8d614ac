"""Arrow schemas for every table the pipeline writes, with one validation entry point.

Every writer calls :func:`validate_table` before a shard is committed.
"""

from data_schemas.images import IMAGE_STRUCT, encode_image_cell, decode_image_cell
from data_schemas.quarantine import QUARANTINE_REASONS, QuarantineReason, quarantine_reasons_markdown
from data_schemas.tables import (
    SCHEMA_VERSION,
    TABLES,
    TASK_TYPES,
    ORIGINS,
    Origin,
    QUARANTINE,
    empty_table,
    schema_for,
    validate_table,
)

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "TASK_TYPES",
    "ORIGINS",
    "Origin",
    "QuarantineReason",
    "QUARANTINE_REASONS",
    "quarantine_reasons_markdown",
    "QUARANTINE",
    "IMAGE_STRUCT",
    "encode_image_cell",
    "decode_image_cell",
    "empty_table",
    "schema_for",
    "validate_table",
]
