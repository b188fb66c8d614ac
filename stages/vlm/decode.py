"""Response text from generated token ids: special tokens dropped, except the family's box tokens.

``skip_special_tokens=True`` removes the tags some families write boxes with (Qwen2-VL's
``<|box_start|>``, InternVL's and MiniCPM-V's ``<box>``, DeepSeek-VL2's ``<|det|>``, Florence-2's
``<loc_N>``): a Florence-2 box is then gone and adjacent MiniCPM-V boxes run together. The decoder
keeps the special tokens matching the family profile's ``keep_tokens`` and drops the others (eos,
pad, chat markers), as ``skip_special_tokens=True`` would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ResponseDecoder"]


class ResponseDecoder:
    """Decode response ids with ``tokenizer``, keeping the special tokens that fully match
    ``keep_tokens`` (a regular expression; ``""`` keeps none, exactly ``skip_special_tokens=True``)."""

    def __init__(self, tokenizer: Any, keep_tokens: str = "") -> None:
        self.tokenizer = tokenizer
        self.drop: frozenset[int] | None = None
        if not keep_tokens:
            return
        pattern = re.compile(keep_tokens)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        special |= {i for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items() if getattr(tok, "special", False)}
        keep = {i for i in special if pattern.fullmatch(str(tokenizer.convert_ids_to_tokens(i)))}
        if keep:
            self.drop = frozenset(special - keep)

    @property
    def keeps_tokens(self) -> bool:
        """True when some special tokens of this tokenizer are kept."""
        return self.drop is not None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: special tokens dropped except the kept ones."""
        if self.drop is None:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return self.tokenizer.decode([i for i in ids if i not in self.drop], skip_special_tokens=False)
