"""Screenshot a run's viewer in headless Chromium: the index and one task page (for the README).

    python tools/viewer_screenshots.py RUN_DIR [OUT_DIR]

Writes ``viewer-index.png`` and ``viewer-task.png`` (the first grounding task with a list) into
OUT_DIR (default ``docs/``). Needs Debian's chromium (``apt-get install chromium``) and playwright.
"""

from __future__ import annotations

import sys
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    viewer = Path(argv[0]) / "viewer"
    out = Path(argv[1]) if len(argv) > 1 else Path("docs")
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        page.goto((viewer / "index.html").as_uri())
        page.wait_for_selector("body[data-ready]")
        page.screenshot(path=str(out / "viewer-index.png"))
        pos = page.evaluate(
            "() => { const rows = [...document.querySelectorAll('#rows tbody tr')];"
            " const row = rows.find(r => r.textContent.includes('grounding') && r.querySelector('.bar'));"
            " return row ? Number(row.dataset.pos) : 0; }"
        )
        page.goto((viewer / "task.html").as_uri() + f"#p={pos}")
        page.wait_for_selector("body[data-ready]")
        page.locator("tr.response").nth(1).hover()  # one response's boxes highlighted
        page.screenshot(path=str(out / "viewer-task.png"), full_page=False)
        browser.close()
    print(f"wrote {out / 'viewer-index.png'} and {out / 'viewer-task.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
