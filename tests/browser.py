"""Open a page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): console errors, broken
images, and a full-page screenshot.

    python tests/browser.py reports/index.html docs/report.png     # what `make screenshot` runs
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# The flags of a closed network: no background fetches, no first-run or sync traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
BROKEN_IMAGES_JS = "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"


def chromium() -> str | None:
    """The system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page_path: Path, screenshot: Path | None = None, width: int = 1280) -> dict:
    """Load the page from disk and report {console_errors, page_errors, broken_images, images, failed_requests,
    external_requests, title}."""
    from playwright.sync_api import sync_playwright

    url = Path(page_path).resolve().as_uri()
    found: dict = {"console_errors": [], "page_errors": [], "failed_requests": [], "external_requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: found["console_errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: found["page_errors"].append(str(e)))
        page.on("requestfailed", lambda r: found["failed_requests"].append(r.url[:120]))
        page.on("request", lambda r: found["external_requests"].append(r.url[:120])
                if not r.url.startswith(("file:", "data:")) else None)
        page.goto(url, wait_until="load")
        found["broken_images"] = page.evaluate(BROKEN_IMAGES_JS)
        found["images"] = page.evaluate("document.images.length")
        found["title"] = page.title()
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return found


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py <page.html> <screenshot.png>")
    result = render(Path(sys.argv[1]), Path(sys.argv[2]))
    print({k: (v if k != "external_requests" else len(v)) for k, v in result.items()})
    problems = result["console_errors"] + result["page_errors"] + result["broken_images"]
    sys.exit(1 if problems else 0)
