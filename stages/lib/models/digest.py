"""A content digest of a saved model folder: what says whether two folders hold the same weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from stages.lib.files import file_sha256

__all__ = ["WEIGHT_SUFFIXES", "model_digest"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")  # weights, and the configs that change what they compute


def model_digest(model_dir: str | Path) -> str:
    """The sha256 over the names and sha256 of the folder's weight and config files (sorted); a missing folder raises."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()
