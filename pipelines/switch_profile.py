"""Switch the study's profile: `python pipelines/switch_profile.py <profile>` makes params.yaml that profile's grid.

`make repro PROFILE=…` calls this before `dvc repro`. A params.yaml that already names the profile is left as it
is, so hand edits survive; switching replaces it with conf/study/<profile>.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.launch.cli import reported
from gradlab.study.grid import profiles, switch_profile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help=f"one of: {', '.join(profiles())}")
    args = parser.parse_args(argv)
    changed = reported(lambda: switch_profile(Path("params.yaml"), args.profile))
    print(f"params.yaml: profile {args.profile}" + (" (switched from conf/study/)" if changed else " (unchanged)"))


if __name__ == "__main__":
    main()
