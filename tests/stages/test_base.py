"""The stage contract's helpers (stages/base.py): quarantine rows."""

from __future__ import annotations

import json

from data_schemas.quarantine import QuarantineReason
from stages.base import quarantine_row


def test_quarantine_row_elides_bytes_and_keeps_the_reason_text():
    row = quarantine_row("t1", QuarantineReason.CORRUPT_IMAGE, "bad", {"image": {"bytes": b"xyz", "path": "a.png"}})
    assert row["reason"] == "corrupt_image" and type(row["reason"]) is str
    assert json.loads(row["record"]) == {"image": {"bytes": "<3 bytes>", "path": "a.png"}}


def test_quarantine_row_escapes_lone_surrogates():
    """A lone surrogate in the offending row must not make its quarantine row unwritable (issue 11, item 2)."""
    row = quarantine_row("ref=\ud800", QuarantineReason.MALFORMED_RECORD, "bad \udfff", {"k": "\ud800"})
    assert row["row_ref"] == "ref=\\ud800" and row["message"] == "bad \\udfff" and "\\ud800" in row["record"]
    for value in row.values():
        value.encode("utf-8")
