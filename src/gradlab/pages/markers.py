"""Result numbers in README.md and docs/*.md come from files the code wrote: marked blocks that `make readme`
rewrites.

A block is `<!-- results:NAME -->` ... `<!-- /results:NAME -->`; its text is rendered from docs/results/NAME.json
(NAME up to its first `/`; written by the code that measured it, with the machine it ran on) by the renderer
registered for NAME. A block may sit in any of the pages (README.md, docs/*.md); a renderer writes links from the
repository's root (`docs/x.png`) and a page in docs/ gets them relative to itself. A test renders every block from
its file and fails when a page says anything else."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradlab.core.runfolder import atomic_write_bytes
from gradlab.pages.blocks import g as g  # re-exported: README's number format
from gradlab.pages.blocks import (
    render_cpu_profile,
    render_documented_run,
    render_geometry,
    render_lyapunov,
    render_papers,
    render_repro_time,
    render_reproduction,
    render_study_runner,
)
from gradlab.pages.recording import RESULTS_DIR, ROOT, read_result
from gradlab.pages.recording import machine as machine  # re-exported, with machine_line and study_record
from gradlab.pages.recording import machine_line as machine_line
from gradlab.pages.recording import study_record as study_record

# <!-- results:<file>[/<part>] --> … <!-- /results:<file>[/<part>] -->: rendered from docs/results/<file>.json
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w/-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"documented_run": render_documented_run,
                                                          "cpu_profile": render_cpu_profile,
                                                          "cpu_profile/time": render_repro_time,
                                                          # the JOBS=1 comparisons, recorded on an earlier commit
                                                          "cpu_profile_682ae68/runner": render_study_runner,
                                                          "cpu_profile/reproduction": render_reproduction,
                                                          "cpu_profile/lyapunov": render_lyapunov,
                                                          "cpu_profile/geometry": render_geometry,
                                                          "papers_cpu/reproduction": render_papers}


WIDTH = 120  # the pages' line length


def _wrapped(text: str) -> str:
    """Each paragraph of a rendered block folded to README's line length (Markdown joins the lines again); table
    rows stay whole."""
    import textwrap

    return "".join((p if p.startswith("|") else textwrap.fill(p, WIDTH, break_on_hyphens=False,
                                                              break_long_words=False)) + "\n"
                   for p in text.rstrip("\n").split("\n"))


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose blocks `make readme` renders: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _rendered(name: str, results_dir: Path, page: Path | None) -> str:
    text = _wrapped(RENDERERS[name](read_result(name.split("/")[0], results_dir)))
    if page is not None and page.resolve().parent.name == "docs":  # links from the root, relative to docs/
        text = text.replace("](docs/", "](")
    return text


def render(text: str, results_dir: Path = RESULTS_DIR, page: Path | None = None) -> str:
    """text (of page, README.md by default) with every results block rendered from its file (KeyError for a block
    without a renderer)."""
    def block(m: re.Match) -> str:
        return m.group(1) + _rendered(m["name"], results_dir, page) + m.group(4)

    return BLOCK.sub(block, text)


def blocks(text: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(text)]


def stale_blocks(text: str, results_dir: Path = RESULTS_DIR, page: Path | None = None) -> list[str]:
    """The blocks whose text is not what their result file renders to."""
    return [m["name"] for m in BLOCK.finditer(text) if m["body"] != _rendered(m["name"], results_dir, page)]


def stale_pages(root: Path = ROOT, results_dir: Path = RESULTS_DIR) -> dict[str, list[str]]:
    """page (relative to root) -> its stale blocks, for every page that has one."""
    stale = {str(p.relative_to(root)): stale_blocks(p.read_text(), results_dir, p) for p in pages(root)}
    return {page: names for page, names in stale.items() if names}


def update_pages(root: Path = ROOT, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Rewrite the blocks of every page from the result files; the pages (relative to root) that changed."""
    changed = []
    for page in pages(root):
        old = page.read_text()
        new = render(old, results_dir, page)
        if new != old:
            atomic_write_bytes(page, new.encode())
            changed.append(str(page.relative_to(root)))
    return changed
