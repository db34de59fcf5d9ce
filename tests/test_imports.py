"""Every ``augself`` module imports on its own, and the ``augself.eval`` modules import each other without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import augself

PACKAGE = Path(augself.__file__).parent


def module_names() -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``src/augself`` (packages by their ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``known`` modules that ``name`` imports anywhere in its file (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # ``from pkg import submodule``
    return {m for m in found if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, ..., a]``) or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle through a function-level import and ``from pkg import module`` is found."""
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p import b\n")
    (pkg / "b.py").write_text("from p.a import f\n")
    (pkg / "c.py").write_text("import p.a\n")
    files = {"p": pkg / "__init__.py", **{f"p.{n}": pkg / f"{n}.py" for n in "abc"}}
    graph = {n: imported_modules(n, f, set(files)) for n, f in files.items()}
    assert graph["p.a"] == {"p", "p.b"} and graph["p.c"] == {"p.a"}
    assert find_cycle(graph) == ["p.a", "p.b", "p.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_eval_modules_have_no_import_cycle() -> None:
    """``augself.eval``: no module imports (at top level or inside a function) one that imports it back."""
    files = module_names()
    known = {n for n in files if n.startswith("augself.eval.")}
    graph = {n: imported_modules(n, files[n], known) for n in known}
    assert len(graph) >= 10 and any(graph.values())
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


_IMPORT_EACH = """
import importlib, sys, traceback
def purge():
    for loaded in [m for m in sys.modules if m == "augself" or m.startswith("augself.")]:
        del sys.modules[loaded]
for name in sys.argv[2:]:  # load the third-party packages once (their own bytecode caches)
    try:
        importlib.import_module(name)
    except Exception:
        pass
    purge()
sys.dont_write_bytecode, sys.pycache_prefix = False, sys.argv[1]  # then compile each augself file once only
failed = []
for name in sys.argv[2:]:
    purge()  # each module alone, as if it were the first one a user imports
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own(tmp_path: Path) -> None:
    """A fresh interpreter imports each module with no other ``augself`` module loaded before it (an import
    order that only works after another module was imported fails here)."""
    names = sorted(n for n in module_names() if n != "augself.__main__")
    assert len(names) >= 50
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, str(tmp_path), *names],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"modules that fail to import on their own:\n{proc.stdout}{proc.stderr[-2000:]}"
