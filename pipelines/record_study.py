"""Record a finished study for README: `python pipelines/record_study.py CLONE [--serial CLONE] [--name cpu_profile]`.

CLONE is a checkout where `make repro` ran (its results/repro.json, results/summary/summary.csv and runs/); --serial
another checkout of the same commit where `make repro JOBS=1` ran the same grid; --serial-same-threads one where
`make repro JOBS=1 THREADS=<CLONE's threads>` ran it; --other one where the same grid ran with other THREADS (the
reproduction verdicts of both, row by row). Writes docs/results/<name>.json (the grid, the wall times and
their ratios, whether summary.csv and every run's metrics.json are byte-identical between CLONE and each other
checkout, the headline and the per-cell table), rewrites the `<name>` blocks of README.md and docs/*.md from it, and
(for cpu_profile, or --picture) takes README's picture, the first screen of CLONE's report (gradlab.pages.picture).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clone", type=Path, help="the checkout where `make repro` (JOBS>1) ran")
    parser.add_argument("--serial", type=Path, default=None, help="the checkout where `make repro JOBS=1` ran")
    parser.add_argument("--serial-same-threads", type=Path, default=None,
                        help="the checkout where `make repro JOBS=1 THREADS=<the parallel study's>` ran")
    parser.add_argument("--other", type=Path, default=None,
                        help="another fresh clone where the same grid ran with other THREADS (its verdicts beside)")
    parser.add_argument("--name", default="cpu_profile", help="docs/results/<name>.json and the pages' blocks")
    parser.add_argument("--picture", type=Path, default=None,
                        help="the first screen of CLONE's report -> this PNG, with the record it shows in a text "
                             "chunk (default for --name cpu_profile: docs/report.png, README's picture)")
    args = parser.parse_args(argv)
    picture = args.picture or (ROOT / "docs" / "report.png" if args.name == "cpu_profile" else None)
    page = args.clone / "reports" / "index.html"
    if picture is not None and not page.is_file():
        print(f"error: {page} is missing: the picture is of the clone's report (make repro writes it)", file=sys.stderr)
        return 2

    from gradlab.pages.markers import update_pages
    from gradlab.pages.recording import study_record, write_result

    try:
        data = study_record(args.clone, args.serial, args.serial_same_threads, args.other)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_result(args.name, data)
    changed = update_pages()
    print(f"wrote {path}; " + (f"updated {', '.join(changed)}" if changed else "no page changed (or no such block)"))
    if picture is not None:
        from gradlab.pages import picture as pictures

        try:
            pictures.take(page, picture, pictures.picture_record(args.name, data))
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {picture}: the first screen of {page}")
    for key, cmp in (("serial", "compare"), ("serial_same_threads", "compare_same_threads")):
        if key not in data:
            continue
        c = data[cmp]
        print(f"{key}: wall {data['parallel']['wall_s']:.0f} s vs {data[key]['wall_s']:.0f} s serial: "
              f"{c['wall_ratio']:.2f}x; "
              f"metrics.json identical in {c['metrics_json_identical']}/{c['metrics_json_runs']} runs; "
              f"summary.csv {'identical' if c['summary_csv_identical'] else 'differs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
