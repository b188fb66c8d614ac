"""Quoting model output in a detail or an error: cut to a bounded length."""

from __future__ import annotations

__all__ = ["SNIPPET_CHARS", "snippet"]

# Detail strings quoting model output are cut to this many characters so a 10k-character
# answer never bloats the scored table.
SNIPPET_CHARS = 80


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters (with an ellipsis) for use in a detail dict."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
