"""Tests of publishing to the Hub, against a local HTTP stand-in (never the real Hub).

The stand-in answers the endpoints huggingface_hub calls for ``create_repo``, ``create_branch`` and
``upload_folder``: README metadata validation, ``preupload`` (every file is a regular, non-LFS
file, so no Xet/LFS transfer happens; a file it already has comes back with its oid, as the Hub
answers, so the client skips it) and the ndjson ``commit``, whose base64 contents it keeps. It can
be told to answer an HTTP status (429, 503...) or to drop the connection halfway through a request.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from huggingface_hub.utils.sha import git_hash

from pipeline.publish import PublishReport, RetryPolicy, list_upload_files, publish_folder
from stages.lib.errors import ConfigError, PublishError

TOKEN = "hf_standinSECRET0123456789"
REPO = "me/perpo-demo"


class _StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_status: int | None = None
        self.fail_on = ""  # regex searched in the request path; "" fails every request
        self.faults: list[_Fault] = []  # transient faults, see fault()
        self.html_on: str | None = None  # regex: answer 200 with a proxy's HTML page instead of JSON
        self.files: dict[str, bytes] = {}
        self.commits: list[list[str]] = []  # paths of each accepted commit, in order
        self.calls: list[tuple[str, str]] = []
        self.auth_headers: set[str] = set()

    def fault(self, on: str, action: int | str, times: int = 1, after: int = 0, retry_after: int | None = None) -> None:
        """Answer ``times`` requests whose path matches ``on`` with the HTTP status ``action`` (or drop the
        connection halfway through the request body when ``action == "drop"``), after letting ``after``
        matching requests through."""
        self.faults.append(_Fault(on, action, times, after, retry_after))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class _Fault:
    on: str
    action: int | str
    times: int
    after: int
    retry_after: int | None

    def hit(self, path: str) -> bool:
        """Whether this request gets the fault (and count it)."""
        if not re.search(self.on, path) or self.times <= 0:
            return False
        if self.after > 0:
            self.after -= 1
            return False
        self.times -= 1
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _StandIn

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        fault = next((f for f in self.server.faults if f.hit(path)), None)
        if fault is not None and fault.action == "drop":
            self.rfile.read(length // 2)  # the connection goes away mid-upload, no reply
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            self.server.calls.append(("DROPPED", path))
            return
        body = self.rfile.read(length)
        self.server.calls.append((self.command, path))
        self.server.auth_headers.add(self.headers.get("Authorization", ""))
        if self.server.html_on is not None and re.search(self.server.html_on, path):
            page = b"<html><body>Corporate proxy: please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return None
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._reply(fault.action, {"error": f"stand-in answers {fault.action}"}, headers)
        if self.server.fail_status is not None and re.search(self.server.fail_on, path):
            message = f"stand-in refuses with {self.server.fail_status}"
            return self._reply(self.server.fail_status, {"error": message}, {"X-Error-Message": message})
        if path == "/api/repos/create":
            req = json.loads(body)
            return self._reply(200, {"url": f"{self.server.url}/datasets/{req['organization']}/{req['name']}"})
        if path == "/api/validate-yaml":
            return self._reply(200, {"errors": [], "warnings": []})
        if m := re.fullmatch(r"/api/datasets/[^/]+/[^/]+/preupload/([^/]+)", path):
            # the oid of a file it already has (git blob sha1, as the Hub answers): the client skips it
            stored = {p: git_hash(data) for p, data in self.server.files.items()}
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": stored.get(f"{m[1]}:{f['path']}")}
                for f in json.loads(body)["files"]
            ]
            return self._reply(200, {"files": files})
        if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commit/([^/]+)", path):
            paths = []
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.server.files[f"{m[2]}:{item['value']['path']}"] = base64.b64decode(item["value"]["content"])
                    paths.append(item["value"]["path"])
            self.server.commits.append(paths)
            return self._reply(200, {"commitUrl": f"{self.server.url}/datasets/{m[1]}/commit/{'a' * 40}", "commitOid": "a" * 40})
        if re.fullmatch(r"/api/datasets/[^/]+/[^/]+/branch/[^/]+", path):
            return self._reply(200, {})
        return self._reply(404, {"error": f"stand-in has no {self.command} {path}"})

    do_GET = do_POST = _handle


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Let huggingface_hub reach 127.0.0.1 (the suite runs with HF_HUB_OFFLINE=1) and hide any real login."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # hf_xet keeps a cache and logs under HF_HOME/xet: keep them in the test's folder.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "hf-home" / "xet"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(tmp_path / "hf-home" / "xet"))


@pytest.fixture
def hub(online):
    server = _StandIn()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "export"
    (root / "data" / "pairs").mkdir(parents=True)
    (root / "README.md").write_text("---\nlicense: mit\n---\n\n# demo\n")
    (root / "data" / "pairs" / "train-00000-of-00001.parquet").write_bytes(b"PAR1" + bytes(range(256)) + b"PAR1")
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "upload.lock").write_text("ignored")
    return root


def _assert_no_token_leak(err: BaseException, caplog, capsys) -> None:
    out = capsys.readouterr()
    texts = ["".join(traceback.format_exception(err)), caplog.text, out.out, out.err]
    assert all(TOKEN not in text for text in texts)


def test_dry_run_lists_files_without_network(folder, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # any request would raise
    report = publish_folder(folder, REPO, dry_run=True)
    assert report.method == "dry_run" and report.dry_run
    readme = (folder / "README.md").stat().st_size
    assert [(f.path, f.size) for f in report.files] == [("README.md", readme), ("data/pairs/train-00000-of-00001.parquet", 264)]
    assert report.total_bytes == readme + 264
    assert report.summary().startswith(f"would upload 2 files ({readme + 264} bytes)")


def test_upload_reaches_stand_in(folder, hub, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    report = publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url)
    assert isinstance(report, PublishReport) and report.method == "upload_folder"
    assert hub.files == {f"main:{f.path}": (folder / f.path).read_bytes() for f in list_upload_files(folder)}
    assert ("POST", "/api/repos/create") in hub.calls
    assert hub.auth_headers == {f"Bearer {TOKEN}"}
    assert report.commit_url.endswith("/datasets/me/perpo-demo/commit/" + "a" * 40)
    assert report.repo_url == f"{hub.url}/datasets/me/perpo-demo"
    out = capsys.readouterr()
    assert TOKEN not in caplog.text + out.out + out.err and "publishing 2 files" in caplog.text


def test_revision_creates_branch(folder, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # token from the environment
    publish_folder(folder, REPO, revision="v1", endpoint=hub.url)
    assert ("POST", "/api/datasets/me/perpo-demo/branch/v1") in hub.calls
    assert set(hub.files) == {"v1:README.md", "v1:data/pairs/train-00000-of-00001.parquet"}


def test_large_folder_threshold_still_uploads(folder, hub):
    report = publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url, large_folder_threshold_bytes=0)
    # huggingface_hub 2.4 has no upload_large_folder: upload_folder's Xet pipeline batches commits itself.
    assert report.method in ("upload_folder", "upload_large_folder")
    assert len(hub.files) == 2


def test_large_folder_uses_upload_large_folder_where_it_exists(folder, hub, monkeypatch):
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "upload_large_folder", lambda self, **kw: calls.append(kw), raising=False)
    report = publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url, large_folder_threshold_bytes=100)
    assert report.method == "upload_large_folder" and report.commit_url is None
    assert calls == [{"repo_id": REPO, "folder_path": folder, "repo_type": "dataset", "revision": "main"}]
    assert publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url).method == "upload_folder"  # under threshold


@pytest.mark.parametrize(
    "status, message",
    [
        (401, r"^authentication failed \(HTTP 401\) for dataset me/perpo-demo@main: the token is invalid or expired"),
        (403, r"^permission denied \(HTTP 403\) for dataset me/perpo-demo@main: the token cannot write there"),
        (404, r"^not found \(HTTP 404\) for dataset me/perpo-demo@main at http://127\.0\.0\.1:\d+: check the repo id"),
        (400, r"^the Hub refused the upload to dataset me/perpo-demo@main \(HTTP 400\): stand-in refuses with 400$"),
    ],
)
def test_http_errors_map_to_publish_error(folder, hub, caplog, capsys, status, message):
    caplog.set_level(logging.DEBUG)
    hub.fail_status = status
    with pytest.raises(PublishError, match=message) as info:
        publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url)
    assert "\n" not in str(info.value)
    _assert_no_token_leak(info.value, caplog, capsys)


@pytest.mark.parametrize(
    "status, endpoint, message",
    [
        (403, "/preupload/", r"^permission denied \(HTTP 403\) for dataset me/perpo-demo@main"),
        (404, "/commit/", r"^not found \(HTTP 404\) for dataset me/perpo-demo@main"),
        # huggingface_hub turns a 400 on README validation into a ValueError: still a one-line PublishError.
        (400, "/validate-yaml", r"^the Hub refused the upload to dataset me/perpo-demo@main \(HTTP 400\): stand-in"),
    ],
)
def test_errors_after_repo_creation_map_too(folder, hub, caplog, capsys, status, endpoint, message):
    hub.fail_status, hub.fail_on = status, endpoint
    with pytest.raises(PublishError, match=message) as info:
        publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url)
    assert ("POST", "/api/repos/create") in hub.calls and hub.files == {}
    _assert_no_token_leak(info.value, caplog, capsys)


@pytest.mark.parametrize("endpoint", ["/api/repos/create", "/preupload/"])
def test_a_200_reply_that_is_not_json_is_publish_error(folder, hub, caplog, capsys, endpoint):
    """A proxy's HTML login page with status 200 (issue 11, item 11)."""
    hub.html_on = endpoint
    with pytest.raises(PublishError, match=r"^the Hub at http://127\.0\.0\.1:\d+ answered dataset me/perpo-demo@main with a "
                       r"reply that is not JSON") as info:
        publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url)
    assert "\n" not in str(info.value) and hub.files == {}
    _assert_no_token_leak(info.value, caplog, capsys)


def test_connection_refused_is_publish_error(folder, online, caplog, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(PublishError, match=rf"^cannot reach the Hub at http://127\.0\.0\.1:{port} \(\w+\); check the network.* after 5 tries$") as info:
        publish_folder(folder, REPO, token=TOKEN, endpoint=f"http://127.0.0.1:{port}", sleep=waits.append)
    assert waits == [2.0, 4.0, 8.0, 16.0]  # a refused connection may be a blip: retried with backoff, then reported
    _assert_no_token_leak(info.value, caplog, capsys)


def test_missing_token_is_publish_error(folder, hub):
    with pytest.raises(PublishError, match=r"^no Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        publish_folder(folder, REPO, endpoint=hub.url)
    assert hub.calls == []


def test_offline_mode_is_publish_error(folder, online, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    waits: list[float] = []
    with pytest.raises(PublishError, match=r"offline mode is on \(HF_HUB_OFFLINE\)"):
        publish_folder(folder, REPO, token=TOKEN, endpoint="http://127.0.0.1:9", sleep=waits.append)
    assert waits == []  # a setting, not a blip: not retried


def test_missing_folder_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"is not a folder; run `perpo-pipeline export` first"):
        publish_folder(tmp_path / "missing", REPO, dry_run=True)


def test_folder_without_card_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"has no README.md dataset card"):
        publish_folder(tmp_path, REPO, dry_run=True)


def test_bad_repo_id_is_config_error(folder):
    with pytest.raises(ConfigError, match=r"repo_id 'not a/valid id' is not a valid Hub repo id"):
        publish_folder(folder, "not a/valid id", dry_run=True)


# --- at scale: transient failures and resumed uploads


@pytest.fixture
def hub_waits(monkeypatch) -> list[float]:
    """huggingface_hub's own per-request backoff (utils/_http.py), recorded instead of slept."""
    from types import SimpleNamespace

    from huggingface_hub.utils import _http

    waits: list[float] = []
    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=waits.append))
    return waits


@pytest.fixture
def big_folder(folder, monkeypatch) -> Path:
    """An export with several data shards, each committed on its own (as a large export is, in batches)."""
    from huggingface_hub import _upload_pipeline

    for i in range(1, 5):
        (folder / "data" / "pairs" / f"train-{i:05d}-of-00005.parquet").write_bytes(b"PAR1" + bytes([i]) * 300 + b"PAR1")
    # one file per commit: upload_folder's batches are bounded by files and bytes; make the bound one file
    monkeypatch.setattr(_upload_pipeline, "REGULAR_CONTENT_BYTES_BUDGET", 1)
    return folder


def test_429_503_and_a_dropped_connection_are_survived(folder, hub, hub_waits, caplog):
    """create_repo has no retry of its own in huggingface_hub: ours waits 2 s then 4 s; preupload's 429 and
    the commit dropped mid-upload are retried by huggingface_hub's own backoff (Retry-After honoured)."""
    hub.fault("/api/repos/create", 503, times=2)
    hub.fault("/preupload/", 429, retry_after=3)
    hub.fault("/commit/", "drop")
    waits: list[float] = []
    report = publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url, sleep=waits.append)
    assert report.attempts == 3 and waits == [2.0, 4.0]
    assert hub_waits == [4.0, 1.0]  # Retry-After 3 (+1 s, as huggingface_hub waits), then its 1 s base
    assert ("DROPPED", "/api/datasets/me/perpo-demo/commit/main") in hub.calls
    assert hub.files == {f"main:{f.path}": (folder / f.path).read_bytes() for f in list_upload_files(folder)}
    assert "retrying in 2.0 s (try 2 of 5)" in caplog.text and TOKEN not in caplog.text


def test_transient_failures_that_outlast_the_retries_are_one_line(folder, hub, hub_waits):
    hub.fault("/api/repos/create", 503, times=10)
    with pytest.raises(PublishError, match=r"^the Hub refused the upload to dataset me/perpo-demo@main \(HTTP 503\): stand-in answers 503 after 3 tries$"):
        publish_folder(folder, REPO, token=TOKEN, endpoint=hub.url, retry=RetryPolicy(attempts=3), sleep=lambda s: None)


def test_our_retry_resumes_without_resending_committed_files(big_folder, hub, hub_waits):
    """The third commit fails longer than huggingface_hub retries it (1 + 5 tries): our next try asks the
    Hub what it has and commits only the rest."""
    hub.fault("/commit/", "drop", times=6, after=2)
    waits: list[float] = []
    report = publish_folder(big_folder, REPO, token=TOKEN, endpoint=hub.url, sleep=waits.append)
    assert report.attempts == 2 and waits == [2.0]
    sent = [path for commit in hub.commits for path in commit]
    assert sorted(sent) == sorted(f.path for f in list_upload_files(big_folder))  # each file committed exactly once
    assert len(hub.commits) == len(sent) == 6


def test_an_interrupted_publish_resumes_on_the_next_one(big_folder, hub, hub_waits):
    """A publish that gave up (or was killed) leaves its finished commits on the Hub; publishing the same
    folder again sends only the files still missing."""
    hub.fault("/commit/", "drop", times=6, after=3)
    with pytest.raises(PublishError, match=r"^cannot reach the Hub at .*\(\w+Error\)"):
        publish_folder(big_folder, REPO, token=TOKEN, endpoint=hub.url, retry=RetryPolicy(attempts=1))
    first = [path for commit in hub.commits for path in commit]
    assert len(first) == 3
    publish_folder(big_folder, REPO, token=TOKEN, endpoint=hub.url)
    second = [path for commit in hub.commits[3:] for path in commit]
    assert not set(first) & set(second) and len(first) + len(second) == len(list_upload_files(big_folder))
    assert hub.files == {f"main:{f.path}": (big_folder / f.path).read_bytes() for f in list_upload_files(big_folder)}

