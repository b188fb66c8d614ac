"""The project's error hierarchy.

User mistakes raise one of these; the CLI turns them into a one-line message and exit code 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "PipelineError",
    "ConfigError",
    "CorpusError",
    "SchemaError",
    "ModelError",
    "StageFailedError",
    "PublishError",
]


class PipelineError(Exception):
    """Base class of every error that is the user's to fix (bad config, bad path, bad data)."""


class ConfigError(PipelineError, ValueError):
    """A config file or override is invalid; the message names the key, the value and the fix."""


class CorpusError(PipelineError, ValueError):
    """The corpus cannot be read at all (missing path, unknown format)."""


class SchemaError(PipelineError, TypeError):
    """A table does not match its declared Arrow schema."""


class ModelError(PipelineError, ValueError):
    """A model path or id cannot be loaded as an image-text model."""


class StageFailedError(PipelineError, RuntimeError):
    """A shard still failed after its retries; the message names the stage, shard and cause."""


class PublishError(PipelineError, RuntimeError):
    """Upload to the Hub failed (no token, 401/403/404, network)."""
