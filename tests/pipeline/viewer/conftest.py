"""One small demo run (built once per test session) for the viewer tests, and one headless Chromium.

The run reads the demo corpus as a JSONL manifest with two bad lines appended (a missing image, a
truncated PNG), so ingest quarantines rows that never become tasks; distorted images are kept, so
task pages show them. Tests that change the run work on a copy (``run_copy``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def demo_settings(model_dir: Path, manifest: Path) -> list[str]:
    return [
        "run.progress=false",
        "run.name=viewer-demo",
        'ingest.format="jsonl"',
        f'ingest.path="{manifest}"',
        "ingest.shard_size=4",
        f'sample.engine.model="{model_dir}"',
        "sample.n=2",
        "sample.max_tokens=8",
        "perturb.max_tokens=8",
        "perturb.distortion.n_answers=1",
        "perturb.distortion.keep_images=true",
        'perturb.distortion.distortions=[{ name = "diffusion", label = "diffusion" }]',
        "train.enabled=false",
    ]


@pytest.fixture(scope="session")
def viewer_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished run of 9 demo tasks (grounding, OCR, VQA) plus 2 quarantined corpus lines, with its viewer."""
    from pipeline.config import load_config
    from pipeline.outputs import view_run
    from pipeline.runner import run_pipeline
    from stages.ingest import write_demo_corpus

    root = tmp_path_factory.mktemp("viewer")
    manifest = write_demo_corpus(root / "corpus", n_tasks=9, seed=3)
    (root / "corpus" / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with manifest.open("a") as fh:
        fh.write(json.dumps({"image": "images/absent.png", "task_type": "vqa", "prompt": "what?", "answer": "x"}) + "\n")
        fh.write(json.dumps({"image": "images/broken.png", "task_type": "ocr", "prompt": "read", "answer": "y"}) + "\n")
    cfg = load_config(None, demo_settings(tiny_model_dir, manifest))
    run_dir = root / "run"
    run_pipeline(cfg, run_dir, use_ray=False)
    view_run(run_dir, cfg=cfg)
    return run_dir


@pytest.fixture
def run_copy(viewer_run, tmp_path) -> Path:
    """A private copy of the demo run (with its viewer) that a test may change."""
    target = tmp_path / "run"
    shutil.copytree(viewer_run, target, symlinks=True)
    (target / ".lock").unlink(missing_ok=True)
    return target


def _launch(playwright):
    if not Path(CHROMIUM).is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """Headless Chromium (Debian's package) under Playwright; skipped with the reason only where it cannot
    start outside CI — in CI (``CI`` set) a browser that does not start fails the tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"playwright is not installed: {exc}")
    manager = sync_playwright().start()
    try:
        browser = _launch(manager)
    except Exception as exc:  # the browser itself cannot start here
        manager.stop()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"headless Chromium cannot be started: {exc}")
    yield browser
    browser.close()
    manager.stop()


@pytest.fixture
def page(chromium, tmp_path):
    """A fresh browser context (its own localStorage, downloads accepted) and one page in it."""
    context = chromium.new_context(accept_downloads=True, viewport={"width": 1300, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
