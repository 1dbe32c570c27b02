"""The result blocks of README.md and docs/*.md from docs/results/*.json: `python pipelines/readme_results.py`
(= `make readme`).

--check: exit 1 (and name the pages and blocks) when a page says something its result files do not.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; change nothing")
    args = parser.parse_args(argv)

    from gradlab.pages.markers import ROOT, blocks, pages, stale_pages, update_pages

    if args.check:
        stale = stale_pages()
        if stale:
            print("error: blocks differ from docs/results/ (" + "; ".join(f"{page}: {', '.join(names)}" for page, names
                  in stale.items()) + "): run `make readme`", file=sys.stderr)
        return 1 if stale else 0
    changed = update_pages()
    for page in pages():
        if names := blocks(page.read_text()):
            name = str(page.relative_to(ROOT))
            print(f"{name} {'updated' if name in changed else 'unchanged'} ({', '.join(names)})")
    return 0

if __name__ == "__main__":
    sys.exit(main())
