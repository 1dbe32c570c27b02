"""README's picture, `docs/report.png`: the first screen (1280x800) of a recorded study's report, taken by the record
step (`pipelines/record_study.py`) from the clone that ran the study, with what it shows written into the PNG itself
(a text chunk, `gradlab-record`: the record's name, commit, profile, tasks, T, models and run count) so that a test
holds the picture to `docs/results/<name>.json` and it cannot drift from the block beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

KEY = "gradlab-record"


def picture_record(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """What a picture of the study recorded as docs/results/<name>.json shows: from that record's own fields."""
    setup = data["setup"]
    return {"record": name, "commit": data.get("commit"), "profile": setup["profile"], "tasks": setup["tasks"],
            "seq_lens": setup["seq_lens"], "models": [m["name"] for m in setup["models"]], "runs": setup["runs"]}


def take(page: Path, png: Path, record: dict[str, Any]) -> Path:
    """The page's first screen in headless Chromium -> png, with `record` in its text chunk; written to a temporary
    name and renamed, so an existing picture is replaced whole or not at all. RuntimeError when the page has console
    errors or broken images (a picture of a broken report is not taken)."""
    from PIL import Image, PngImagePlugin

    from gradlab.report.browser import render

    tmp = png.with_name(f".{png.name}.tmp.png")
    try:
        found = render(page, tmp, full_page=False)
        problems = found["console_errors"] + found["page_errors"] + found["broken_images"]
        if problems:
            raise RuntimeError(f"{page}: {problems[0]} (and {len(problems) - 1} more); no picture taken")
        info = PngImagePlugin.PngInfo()
        info.add_text(KEY, json.dumps(record, sort_keys=True))
        with Image.open(tmp) as image:
            image.load()
            image.save(tmp, pnginfo=info, optimize=True)
        os.replace(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)
    return png


def read(png: Path) -> dict[str, Any] | None:
    """The record a picture carries, or None when it has none (a picture not taken by `take`)."""
    from PIL import Image

    with Image.open(png) as image:
        text = getattr(image, "text", {}).get(KEY)
    return json.loads(text) if text else None
