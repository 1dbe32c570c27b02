"""README.md's result blocks from docs/results/*.json: `python pipelines/readme_results.py` (= `make readme`).

--check: exit 1 (and name the blocks) when README.md says something its result files do not.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; change nothing")
    args = parser.parse_args(argv)

    from gradlab.readme_results import ROOT, blocks, stale_blocks, update_readme

    readme = ROOT / "README.md"
    if args.check:
        stale = stale_blocks(readme.read_text())
        if stale:
            print(f"error: README.md's blocks {', '.join(stale)} differ from docs/results/: run `make readme`",
                  file=sys.stderr)
        return 1 if stale else 0
    changed = update_readme()
    print(f"README.md {'updated' if changed else 'unchanged'} ({', '.join(blocks(readme.read_text()))})")
    return 0

if __name__ == "__main__":
    sys.exit(main())
