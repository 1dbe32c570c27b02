"""Open a page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): console errors, broken
images, element boxes, and a screenshot of the first screen (the viewport, 1280x800) or the full page.

    python -m gradlab.report.browser reports/index.html shot.png                   # what `make screenshot` runs
    python -m gradlab.report.browser reports/index.html full.png --full-page       # the whole page

The tests read the report through it, and `pipelines/record_study.py` takes README's picture with it
(gradlab.pages.picture). Playwright is a dev dependency (pyproject's `dev` extra), imported only when a page is
rendered."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# The flags of a closed network: no background fetches, no first-run or sync traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


BROKEN_IMAGES_JS = "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"


# Every element each selector matches, as the page lays it out scrolled to the top: its box (CSS px, relative to the
# viewport: top < height is on the first screen), its line height, and for an image its size in pixels.
BOXES_JS = """selectors => Object.fromEntries(selectors.map(s => [s, Array.from(document.querySelectorAll(s), e => {
  const r = e.getBoundingClientRect();
  const box = {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,
               lineHeight: parseFloat(getComputedStyle(e).lineHeight)};
  if (e.tagName === "IMG") Object.assign(box, {naturalWidth: e.naturalWidth, naturalHeight: e.naturalHeight});
  return box;
})]))"""


VIEWPORT = {"width": 1280, "height": 800}


def chromium() -> str | None:
    """The system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page_path: Path, screenshot: Path | None = None, width: int = VIEWPORT["width"],
           height: int = VIEWPORT["height"], full_page: bool = True, boxes: tuple[str, ...] = ()) -> dict:
    """Load the page from disk in a width x height window and report {console_errors, page_errors, broken_images,
    images, failed_requests, external_requests, title, window, page_size, boxes}: `boxes` maps each of the CSS
    selectors asked for to the boxes of the elements it matches (BOXES_JS), `window` and `page_size` are the
    viewport's and the document's size in CSS px. The screenshot is the full page or, with full_page=False, the
    first screen."""
    from playwright.sync_api import sync_playwright

    url = Path(page_path).resolve().as_uri()
    found: dict = {"console_errors": [], "page_errors": [], "failed_requests": [], "external_requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: found["console_errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: found["page_errors"].append(str(e)))
        page.on("requestfailed", lambda r: found["failed_requests"].append(r.url[:120]))
        page.on("request", lambda r: found["external_requests"].append(r.url[:120])
                if not r.url.startswith(("file:", "data:")) else None)
        page.goto(url, wait_until="load")
        found["broken_images"] = page.evaluate(BROKEN_IMAGES_JS)
        found["images"] = page.evaluate("document.images.length")
        found["title"] = page.title()
        found["window"] = page.evaluate("({width: window.innerWidth, height: window.innerHeight})")
        found["page_size"] = page.evaluate("({width: document.documentElement.scrollWidth, "
                                           "height: document.documentElement.scrollHeight})")
        found["boxes"] = page.evaluate(BOXES_JS, list(boxes))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=full_page)
        browser.close()
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a page in headless Chromium: problems, and a screenshot")
    parser.add_argument("page", type=Path)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--full-page", action="store_true", help="the whole page (default: the first screen)")
    parser.add_argument("--width", type=int, default=VIEWPORT["width"])
    parser.add_argument("--height", type=int, default=VIEWPORT["height"])
    args = parser.parse_args()
    result = render(args.page, args.screenshot, args.width, args.height, full_page=args.full_page)
    print({k: (v if k != "external_requests" else len(v)) for k, v in result.items() if k != "boxes"})
    problems = result["console_errors"] + result["page_errors"] + result["broken_images"]
    sys.exit(1 if problems else 0)
