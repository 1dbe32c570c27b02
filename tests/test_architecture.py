"""gradlab's house: one package per stage of the data's way, each importing only the packages before it, no import
circle anywhere, and modules and functions a reader can hold in view. Plain `ast` over src/gradlab: every import
counts, those inside functions and under `if TYPE_CHECKING:` too (a type hint that points upward is a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

GRADLAB = ROOT / "src" / "gradlab"
# The data's way, bottom to top: a package may import itself and those before it, never one after it.
LAYERS = ("core", "tracking", "theory", "tasks", "cells", "models", "data", "analysis", "probe", "training", "study",
          "report", "pages", "launch", "stages")


def module_name(path: Path) -> str:
    parts = path.relative_to(GRADLAB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(GRADLAB.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path], text: str | None = None) -> set[str]:
    """The gradlab modules `path` imports by name: `import a.b`, `from a.b import c` (c a module when it is one),
    relative imports resolved; a package that imports all its modules (`pkgutil.iter_modules(__path__)`) imports
    each of them."""
    text = path.read_text() if text is None else text
    me, found = module_name(path), set()
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    if path.name == "__init__.py" and "pkgutil.iter_modules(__path__)" in text:
        found |= {m for m in known if m.rpartition(".")[0] == me}
    return {m for m in found if m in known and m != me}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, known) for m, p in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each a circle of imports."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_module_lives_in_a_package_of_the_data_s_way():
    loose = sorted(m for m in modules() if m.count(".") == 1 and m.split(".")[1] not in LAYERS)
    assert not loose, f"modules outside the packages {LAYERS}: {loose}"
    assert set(LAYERS) == {m.split(".")[1] for m in modules() if m.count(".") == 1}


def test_no_import_runs_upward():
    g = graph()
    upward = sorted(f"{m} imports {d}" for m, deps in g.items() for d in deps
                    if layer(m) is not None and layer(d) is not None and layer(d) > layer(m))
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    assert cycles(graph()) == []


def test_the_checks_see_an_upward_import_a_type_hint_and_a_circle():
    """The detectors have the power they claim: on a toy package, a hint-only upward import is found, as are a
    circle through a lazy import and one through a package that imports its modules."""
    g = {"gradlab.cells.a": {"gradlab.models.net"}, "gradlab.models.net": {"gradlab.cells"},
         "gradlab.cells": {"gradlab.cells.a"}}
    assert cycles(g) == [["gradlab.cells", "gradlab.cells.a", "gradlab.models.net"]]
    src = GRADLAB / "cells" / "m.py"  # not written: only its name is used, with the text below
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gradlab.models.net import X\n"
                   "def f():\n    from gradlab import cells\n")
    known = {"gradlab.models.net": src, "gradlab.cells": src, "gradlab": src}
    assert imports(src, known, text) >= {"gradlab.models.net", "gradlab.cells"}


def test_no_module_over_350_lines_and_no_function_over_60():
    """A module a reader can hold in view, and a function that reads as one story. Lines as `wc -l` counts them;
    a function from its `def` (decorators excluded) to its last line."""
    sizes, long_functions = {}, {}
    for path in GRADLAB.rglob("*.py"):
        text = path.read_text()
        sizes[path] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long_functions[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert len(sizes) > 30
    over = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > 350}
    assert not over, over
    assert not long_functions, long_functions
