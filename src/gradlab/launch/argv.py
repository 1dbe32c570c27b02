"""`python -m gradlab.launch.argv SCRIPT [ARG ...]`: run SCRIPT with ARG ... and then the words of $GRADLAB_ARGS,
split as
a shell splits them (quotes group, backslashes escape) but with nothing expanded.

This is how `make experiment|sweep|… ARGS="…"` passes ARGS: make would expand `${model.name}` in a recipe to
nothing, and the shell would then try to expand it itself, so Hydra's interpolations in an override
(`run_name='${model.name}-lr${optim.lr}'`) could not get through. The Makefile hands ARGS over unexpanded
(`$(value ARGS)`) in the environment, and this splits it."""

from __future__ import annotations

import os
import shlex
import sys


def words(raw: str) -> list[str]:
    try:
        return shlex.split(raw)
    except ValueError as err:  # an unclosed quote
        sys.exit(f"error: ARGS={raw!r}: {err}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m gradlab.launch.argv SCRIPT [ARG ...]  (with the rest in $GRADLAB_ARGS)")
    script, *fixed = sys.argv[1:]
    argv = [sys.executable, script, *fixed, *words(os.environ.get("GRADLAB_ARGS", ""))]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
