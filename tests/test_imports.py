"""Every ``augself`` module imports on its own, and ``augself``'s modules import each other without cycles
(function-level imports included; the few that close one are listed in :data:`ALLOWED_LAZY_EDGES`, with why)."""

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


ALLOWED_LAZY_EDGES: dict[tuple[str, str], str] = {
    ("augself.models.backbone_info", "augself.config"): "`import augself` loads backbone_info; config adds ~0.35 s",
    ("augself.augment.specs.registry", "augself.augment.config"): "augment.config builds ViewConfig from SPECS",
}
"""Function-level imports that close an import cycle, and why they stay (each must still exist, inside a function)."""


def _imports(tree: ast.AST, in_function: bool = False) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of ``tree`` with whether it sits inside a function; ``if TYPE_CHECKING:`` bodies
    are skipped (they never run)."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            children: list[ast.stmt] = node.orelse
            for child in children:
                out += _imports(ast.Module(body=[child], type_ignores=[]), in_function)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append((node, in_function))
        out += _imports(node, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))
    return out


def imported_modules(name: str, path: Path, known: set[str], lazy_only: bool = False) -> set[str]:
    """The ``known`` modules that ``name`` imports anywhere in its file (function-level imports included; only
    those with ``lazy_only``). ``from pkg import submodule`` is an import of ``pkg.submodule`` alone, as
    ``import pkg.submodule`` is (Python runs ``pkg/__init__`` first either way)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if lazy_only and not in_function:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: resolved against this module's package
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        subs = {f"{base}.{a.name}" for a in node.names}
        found.update(subs)
        if not subs <= known:  # a name of the module ``base`` itself
            found.add(base)
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
    (pkg / "c.py").write_text("import p.a\nfrom p import VERSION\nif TYPE_CHECKING:\n    from p.d import T\n")
    (pkg / "d.py").write_text("from p.c import x\n")
    files = {"p": pkg / "__init__.py", **{f"p.{n}": pkg / f"{n}.py" for n in "abcd"}}
    graph = {n: imported_modules(n, f, set(files)) for n, f in files.items()}
    assert graph["p.a"] == {"p.b"} and graph["p.c"] == {"p", "p.a"}  # TYPE_CHECKING imports never run
    assert imported_modules("p.a", files["p.a"], set(files), lazy_only=True) == {"p.b"}
    assert imported_modules("p.b", files["p.b"], set(files), lazy_only=True) == set()
    assert find_cycle(graph) == ["p.a", "p.b", "p.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_eval_modules_have_no_import_cycle() -> None:
    """``augself.eval``: no module imports (at top level or inside a function) one that imports it back."""
    files = module_names()
    known = {n for n in files if n.startswith("augself.eval.")}
    graph = {n: imported_modules(n, files[n], known) for n in known}
    assert len(graph) >= 10 and any(graph.values())
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_package_has_no_import_cycle_but_the_listed_lazy_imports() -> None:
    """All of ``augself``: no import cycle once the function-level imports of :data:`ALLOWED_LAZY_EDGES` are left
    out, and each of those is still a function-level import (the list cannot go stale)."""
    files = module_names()
    known = set(files)
    graph = {n: imported_modules(n, files[n], known) for n in known}
    for (src, dst), why in ALLOWED_LAZY_EDGES.items():
        assert dst in imported_modules(src, files[src], known, lazy_only=True), f"{src} -> {dst} ({why}) is gone"
        graph[src].discard(dst)
    assert len(graph) >= 50 and sum(map(len, graph.values())) >= 100
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
