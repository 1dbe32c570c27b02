"""Switch the study's profile: `python pipelines/switch_profile.py smoke|cpu|gpu` makes params.yaml that profile's grid.

`make repro PROFILE=…` calls this before `dvc repro`. A params.yaml that already names the profile is left as it
is, so hand edits survive; switching replaces it with conf/study/<profile>.yaml.
"""

import sys
from pathlib import Path

from gradlab.config import ConfigError
from gradlab.study import PROFILES, switch_profile


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: python pipelines/switch_profile.py {{{'|'.join(PROFILES)}}}")
    params = Path("params.yaml")
    try:
        changed = switch_profile(params, sys.argv[1])
    except ConfigError as err:
        sys.exit(f"error: {err}")
    print(f"params.yaml: profile {sys.argv[1]}" + (" (switched from conf/study/)" if changed else " (unchanged)"))


if __name__ == "__main__":
    main()
