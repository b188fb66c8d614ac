"""Publish an exported dataset folder to the Hugging Face Hub.

``create_repo(repo_type="dataset", exist_ok=True)``, then ``upload_folder`` (or, on
huggingface_hub releases that have it, ``upload_large_folder`` above a size threshold; 2.4 has none,
its ``upload_folder`` already uploads through Xet in resumable batches of commits when ``hf_xet`` is
installed). The token comes from the argument, ``HF_TOKEN`` or the stored login and is never
printed, logged or put into an error message. Every failure the user can fix (no token, 401, 403,
404, network) is a :class:`PublishError` with a one-line message naming the cause.

Large datasets: the export is already in Parquet shards of at most ~500 MB (``pipeline.export``).
A transient failure (HTTP 408, 429, 5xx, a dropped or refused connection) is retried with exponential
backoff (honouring ``Retry-After``), on top of the retries huggingface_hub makes per request. Each
retry, and each later ``publish`` of the same folder, resumes: ``upload_folder`` (huggingface_hub
2.x) asks the Hub for the files it already has (``preupload`` returns their oid) and commits only
the others, so finished files are not sent again.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stages.lib.errors import ConfigError, PublishError, first_line

__all__ = ["LARGE_FOLDER_BYTES", "RETRY_STATUSES", "RetryPolicy", "UploadFile", "PublishReport", "list_upload_files", "publish_folder"]

logger = logging.getLogger(__name__)

LARGE_FOLDER_BYTES = 10 * 1024**3
COMMIT_MESSAGE = "Upload preference dataset (perpo-pipeline)"
# What huggingface_hub's own http_backoff retries (utils/_http.py _DEFAULT_RETRY_ON_STATUS_CODES): timeouts,
# rate limits and server errors. Anything else (401, 403, 404, 400...) is the user's to fix.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a publish is retried after a transient failure."""

    attempts: int = 5  # tries in all: waits of 2, 4, 8, 16 s in between by default
    base_s: float = 2.0  # wait before the second try; doubled for each further one
    max_s: float = 120.0

    def wait(self, failed_tries: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failed_tries`` failures: exponential, at least the server's Retry-After."""
        backoff = min(self.max_s, self.base_s * 2 ** (failed_tries - 1))
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True)
class UploadFile:
    """One file of the folder as it lands in the repo."""

    path: str  # relative to the folder, POSIX separators
    size: int


@dataclass(frozen=True)
class PublishReport:
    """What was (or, with ``dry_run``, would be) uploaded, and where."""

    repo_id: str
    revision: str
    private: bool
    dry_run: bool
    method: str  # "dry_run" | "upload_folder" | "upload_large_folder"
    files: tuple[UploadFile, ...] = field(default_factory=tuple)
    repo_url: str | None = None
    commit_url: str | None = None
    attempts: int = 1  # tries it took (retries after transient failures included)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> str:
        """One line for the CLI."""
        verb = "would upload" if self.dry_run else "uploaded"
        where = self.commit_url or self.repo_url or f"dataset {self.repo_id}@{self.revision}"
        tries = f" ({self.attempts} tries: transient failures retried)" if self.attempts > 1 else ""
        return f"{verb} {len(self.files)} files ({self.total_bytes:,} bytes) to {where}{tries}"


def list_upload_files(folder: Path) -> list[UploadFile]:
    """Return the files ``upload_folder`` would send from ``folder`` (its default ignore patterns applied), sorted."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    folder = Path(folder)
    by_rel = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    kept = filter_repo_objects(list(by_rel), ignore_patterns=list(DEFAULT_IGNORE_PATTERNS))
    return [UploadFile(rel, by_rel[rel].stat().st_size) for rel in kept]


def _check_inputs(folder: Path, repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not folder.is_dir():
        raise ConfigError(f"publish: {folder} is not a folder; run `perpo-pipeline export` first")
    if not (folder / "README.md").is_file():
        raise ConfigError(f"publish: {folder} has no README.md dataset card; publish a folder written by export")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"publish: repo_id {repo_id!r} is not a valid Hub repo id ('namespace/name'): {exc}") from None


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception types of whichever HTTP client this huggingface_hub release uses."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "RequestException")):
        try:
            types.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(types)


def _http_status(exc: BaseException) -> tuple[int | None, str]:
    """Return (status, short server message) of a huggingface_hub HTTP error, else (None, "")."""
    from huggingface_hub.errors import HfHubHTTPError

    if not isinstance(exc, HfHubHTTPError):
        return None, ""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    detail = (exc.server_message or "").strip().splitlines()
    return status, (f": {detail[0][:200]}" if detail else "")


# What a user reads for the HTTP statuses they can fix; any other status reports the server's message.
_STATUS_MESSAGES: dict[int, str] = {
    401: "authentication failed (HTTP 401) for {target}: the token is invalid or expired; "
    "set HF_TOKEN to a valid write token",
    403: "permission denied (HTTP 403) for {target}: the token cannot write there; "
    "use a write token of that user or organization",
    404: "not found (HTTP 404) for {target} at {endpoint}: check the repo id, the revision and the endpoint",
}


def _transient(exc: BaseException) -> tuple[bool, float | None]:
    """Whether ``exc`` is worth retrying (HTTP 408/429/5xx or a connection-level error), and the
    server's Retry-After in seconds when it sent one."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):  # a ConnectionError, but a setting: retrying cannot help
        return False, None
    http_error = exc if _http_status(exc)[0] is not None else exc.__cause__
    if http_error is not None and _http_status(http_error)[0] is not None:
        status = _http_status(http_error)[0]
        headers = getattr(getattr(http_error, "response", None), "headers", None) or {}
        try:
            retry_after = float(headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
        return status in RETRY_STATUSES, retry_after
    chain = [exc, exc.__cause__, exc.__context__]
    return any(isinstance(e, _network_errors()) for e in chain if e is not None), None


def _as_publish_error(exc: BaseException, target: str, endpoint: str) -> PublishError | None:
    """Map an exception from huggingface_hub to a one-line :class:`PublishError`, or ``None`` if it is a bug."""
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, OfflineModeIsEnabled):
        return PublishError(f"cannot publish {target}: offline mode is on (HF_HUB_OFFLINE); unset it to reach the Hub")
    # huggingface_hub re-raises some HTTP errors as ValueError (e.g. invalid README metadata): look at the cause.
    http_error = exc if _http_status(exc)[0] is not None else exc.__cause__
    status, detail = _http_status(http_error) if http_error is not None else (None, "")
    if isinstance(http_error, (RepositoryNotFoundError, RevisionNotFoundError)) and status not in _STATUS_MESSAGES:
        status = 404
    if status in _STATUS_MESSAGES:
        return PublishError(_STATUS_MESSAGES[status].format(target=target, endpoint=endpoint))
    if status is not None:
        if not detail and http_error is not exc:
            detail = ": " + first_line(exc, with_type=False)
        return PublishError(f"the Hub refused the upload to {target} (HTTP {status}){detail}")
    if isinstance(exc, json.JSONDecodeError):  # a 200 that is not the Hub's JSON: a proxy page, a wrong endpoint
        return PublishError(
            f"the Hub at {endpoint} answered {target} with a reply that is not JSON ({exc.msg}); "
            "check HF_ENDPOINT and proxy settings"
        )
    if isinstance(exc, _network_errors()):
        return PublishError(
            f"cannot reach the Hub at {endpoint} ({type(exc).__name__}); check the network, HF_ENDPOINT and proxy settings"
        )
    return None


def _upload_once(api, folder: Path, repo_id: str, private: bool, branch: str, method: str) -> tuple[str, str | None]:
    """One try: create the repo (and branch) if missing, upload the folder; return (repo url, commit url)."""
    repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    if method == "upload_large_folder":
        api.upload_large_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=branch)
        return str(repo_url), None
    commit = api.upload_folder(
        folder_path=folder, repo_id=repo_id, repo_type="dataset", revision=branch, commit_message=COMMIT_MESSAGE
    )
    return str(repo_url), commit.commit_url


def publish_folder(
    folder: Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    large_folder_threshold_bytes: int = LARGE_FOLDER_BYTES,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> PublishReport:
    """Upload ``folder`` to the dataset repo ``repo_id`` (created if missing) and return what was sent.

    ``revision`` names a branch (created if missing; default ``main``). ``private`` applies when
    the repo is created, never to an existing one. ``dry_run`` lists the files and sizes without any
    network access or token. A transient failure (HTTP 408/429/5xx, a dropped connection) is retried
    up to ``retry.attempts`` tries in all, waiting ``retry.wait(...)`` seconds (through ``sleep``)
    in between; each try resumes where the last one stopped. Raises :class:`ConfigError` for a bad
    folder or repo id and :class:`PublishError` (no token, 401, 403, 404, network, other HTTP
    errors, transient ones that outlast the retries) with a one-line cause.
    """
    folder = Path(folder)
    _check_inputs(folder, repo_id)
    files = tuple(list_upload_files(folder))
    branch = revision or "main"
    if dry_run:
        return PublishReport(repo_id, branch, private, dry_run=True, method="dry_run", files=files)

    from huggingface_hub import HfApi, get_token

    token = token or get_token()  # get_token reads HF_TOKEN, then the stored login
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a write token")
    api = HfApi(endpoint=endpoint, token=token)
    target = f"dataset {repo_id}@{branch}"
    total = sum(f.size for f in files)
    large = total > large_folder_threshold_bytes and hasattr(api, "upload_large_folder")  # absent from huggingface_hub 2.4
    method = "upload_large_folder" if large else "upload_folder"
    logger.info("publishing %d files (%d bytes) to %s with %s", len(files), total, target, method)
    for attempt in range(1, retry.attempts + 1):
        try:
            repo_url, commit_url = _upload_once(api, folder, repo_id, private, branch, method)
            return PublishReport(repo_id, branch, private, False, method, files, repo_url, commit_url, attempt)
        except Exception as exc:
            transient, retry_after = _transient(exc)
            if transient and attempt < retry.attempts:
                wait = retry.wait(attempt, retry_after)
                logger.warning(
                    "publish to %s: %s; retrying in %.1f s (try %d of %d), finished files are kept",
                    target, first_line(exc).replace(token, "***"), wait, attempt + 1, retry.attempts,
                )
                sleep(wait)
                continue
            error = _as_publish_error(exc, target, api.endpoint)
            if error is None:
                raise
            tries = f" after {attempt} tries" if attempt > 1 else ""
            raise PublishError(f"{error}{tries}".replace(token, "***")) from exc
    raise AssertionError("unreachable: the last try returns or raises")
