"""A progress bar over a stage's shards, with the row count written so far."""

from __future__ import annotations

import sys

__all__ = ["StageProgress"]


class StageProgress:
    """Context manager: ``advance(rows)`` after each finished shard; silent when disabled or not a terminal-less CI log."""

    def __init__(self, stage: str, total: int, done: int = 0, enabled: bool = True):
        self.stage = stage
        self.total = total
        self.done = done
        self.rows = 0
        self.enabled = enabled
        self._bar = None

    def __enter__(self) -> "StageProgress":
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=f"{self.stage:>9}",
                unit="shard",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
        return self

    def advance(self, rows: int) -> None:
        """Count one finished shard that wrote ``rows`` rows."""
        self.rows += rows
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(rows=self.rows, refresh=False)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
