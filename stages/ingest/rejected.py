"""The exception an ingest check raises for a row that cannot become a task; it carries the quarantine reason."""

from __future__ import annotations

from data_schemas.quarantine import QuarantineReason

__all__ = ["Rejected"]


class Rejected(Exception):
    """A row that cannot become a task; carries the quarantine reason and a human-readable message."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
