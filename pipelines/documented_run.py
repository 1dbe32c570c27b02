"""The documented run (docs/probe.md): `python pipelines/documented_run.py` (= `make documented-run`, ~5 min on 2
cores).

Trains rnn, lstm and nfg_lstm on adding T=100 (2000 steps), probes each on test data, writes
docs/results/documented_run.json and the two figures in docs/, and rewrites the `documented_run` block.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args(argv)

    from gradlab.pages.markers import update_pages
    from gradlab.pages.recording import RESULTS_DIR, ROOT
    from gradlab.stages import documented_run

    with tempfile.TemporaryDirectory() as tmp:
        documented_run.run(args.work or Path(tmp), RESULTS_DIR, ROOT / "docs")
    changed = update_pages()
    print(f"wrote {RESULTS_DIR / 'documented_run.json'}; " + (f"updated {', '.join(changed)}" if changed else
                                                               "no page changed"))


if __name__ == "__main__":
    main()
