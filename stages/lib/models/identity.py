"""What identifies a model for shard fingerprints: what would be loaded, never how its name is spelled.

- A local folder is identified by the content of its files (sha256 of every file ``from_pretrained``
  may read: weights, configs, tokenizer and processor files; hidden files such as ``.cache/`` and
  ``*.md`` are left out). Its path is not part of it: a trailing slash, a relative spelling, a
  symlink or a move changes nothing, while a different model rebuilt into the same folder does.
- A Hub id is identified by the commit sha of its revision, from the Hub (``model_info``) or, offline,
  from the local cache's ``refs/main`` (the cache layout is documented in huggingface_hub's "Manage
  the cache" guide: ``models--{org}--{name}/refs/{branch}`` holds the commit hash). When neither is
  known the sha is None and only the id counts (the conservative choice would be to refuse to run;
  ours is to keep the id, as before, and say so here).
- A path that does not exist is its normalised absolute path (loading it fails with its own error).

Each file is hashed once per process (keyed by its inode, size and modification time), so several
stages naming the same model read it once; reading a 15 GB checkpoint takes about 10 s per run.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["model_fingerprint"]

_HUB_TIMEOUT_S = 10.0


def _hub_api() -> Any:
    from huggingface_hub import HfApi

    return HfApi()


def _hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@lru_cache(maxsize=4096)
def _file_sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _loaded_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` except hidden ones (``.git``, ``.cache``...) and Markdown, sorted."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and not name.lower().endswith(".md"):
                files.append(Path(dirpath) / name)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _loaded_files(folder):
        st = path.stat()
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0" + _file_sha256(str(path), st.st_ino, st.st_size, st.st_mtime_ns).encode() + b"\n")
    return digest.hexdigest()


_HUB_SHAS: dict[str, str] = {}  # repo id -> commit sha, once known in this process


def _hub_revision(repo_id: str) -> str | None:
    if repo_id in _HUB_SHAS:
        return _HUB_SHAS[repo_id]
    sha = None
    try:
        sha = _hub_api().model_info(repo_id, timeout=_HUB_TIMEOUT_S).sha
    except Exception:  # offline (HF_HUB_OFFLINE), no network, gated without a token: fall back to the cache
        pass
    if not sha:
        ref = _hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
        try:
            sha = ref.read_text().strip()
        except OSError:
            return None
    if sha:
        _HUB_SHAS[repo_id] = str(sha)
    return _HUB_SHAS.get(repo_id)


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def model_fingerprint(model: str) -> dict[str, Any]:
    """Return what identifies ``model`` (a local folder or a Hub id): ``{"folder_sha256": ...}``,
    ``{"hub": id, "revision": sha or None}`` or, for a path that does not exist, ``{"path": absolute}``.

    Equal for every spelling of one folder and for byte-identical copies; different as soon as a file
    the model loads from differs.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return {"folder_sha256": _folder_sha256(Path(os.path.realpath(path)))}
    if not path.exists() and _is_repo_id(model):
        return {"hub": model, "revision": _hub_revision(model)}
    return {"path": os.path.abspath(path)}
