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
    "RunFolderError",
    "first_line",
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


class RunFolderError(PipelineError, RuntimeError):
    """The run folder cannot be written (read-only, full, no permission); the message names the folder and cause."""


def first_line(exc: BaseException, with_type: bool = True, limit: int = 500) -> str:
    """One line describing ``exc``: ``"TypeName: first line of its message"`` (or the message alone).

    Never raises: an empty message gives just the type name (or ``""``), so the real error is not
    hidden behind an IndexError from ``splitlines()[0]``. At most ``limit`` characters.
    """
    lines = str(exc).strip().splitlines()
    message = lines[0].strip() if lines else ""
    if with_type:
        message = f"{type(exc).__name__}: {message}".rstrip(": ") if message else type(exc).__name__
    return message[:limit]
