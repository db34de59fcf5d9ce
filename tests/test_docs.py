"""The docs cannot rot: the Python snippets of docs/api.md (and README.md's, which must be copies of them) run; every
repository path, link, anchor, ``augself.*`` name and ``augself`` command line cited in README.md and docs/*.md
exists. The shell commands themselves are run by ``make docs-check`` (tools/docs_check.py)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import docs_check  # noqa: E402

API = REPO / "docs" / "api.md"
REPO_DIRS = ("src", "configs", "docs", "tests", "benchmarks", "tools")
#: Path-shaped notation that names no file (docs/reproduction.md: "setting ``a/x+y`` = ``configs/a/x.yaml`` and
#: ``configs/a/y.yaml``").
NOTATION = {"configs/a/x.yaml", "configs/a/y.yaml"}

# What the test changes in a snippet before running it (fewer images and steps; each text must be in the snippet,
# so a changed snippet fails here until this table follows it). Keyed by the start of the section's heading.
SHRINK: dict[str, list[tuple[str, str]]] = {
    "(a)": [("(256, 3, 40, 40)", "(8, 3, 40, 40)"), ("batch_size=64", "batch_size=8")],
    "(b)": [
        (
            '"data.n=2000", "trainer.epochs=2"',
            '"data.n=64", "trainer.epochs=1", "trainer.batch_size=16", "monitor.every_n_epochs=0", '
            '"data.num_workers=0"',
        )
    ],
    "(c)": [("n=512)", "n=16)"), ("batch_size=64", "batch_size=8")],
    "(d)": [],
}


def _section_of(block: docs_check.Block) -> str:
    """The ``## `` heading above a block of docs/api.md."""
    lines = block.path.read_text(encoding="utf-8").splitlines()[: block.line]
    heads = [ln[3:].strip() for ln in lines if ln.startswith("## ")]
    return heads[-1] if heads else ""


API_BLOCKS = [b for b in docs_check.fenced_blocks(API) if b.lang == "python"]


def _check_a(ns: dict[str, Any], out: str, cwd: Path) -> None:
    import torch

    model, logged = ns["MySSL"](), {}
    model.log_dict = logged.update  # type: ignore[method-assign]  # outside a Trainer: keep what the step logs
    loss = model.training_step(next(iter(ns["loader"])), 0)
    assert loss.requires_grad and torch.isfinite(loss)
    assert set(logged) == {"augself/crop", "augself/color"} and all(torch.isfinite(v) for v in logged.values())


def _check_b(ns: dict[str, Any], out: str, cwd: Path) -> None:
    assert "epoch 0: loss" in out  # the callback was given to the trainer
    run = cwd / ns["out"]
    assert (run / "backbone.pt").is_file() and (run / "config.yaml").is_file()
    assert ns["backbone"].dim > 0


def _check_c(ns: dict[str, Any], out: str, cwd: Path) -> None:
    import torch
    import torchvision

    net = torchvision.models.resnet18()
    net.fc = torch.nn.Identity()
    state = torch.load(cwd / "my_resnet18.pt", weights_only=True)
    net.load_state_dict(state)  # the user's own module, keys unchanged
    trained = {id(p) for p in ns["module"].parameters()}
    assert all(id(p) in trained for p in ns["backbone"].parameters())  # trained in place: the saved file is trained
    assert ns["module"].augself is not None  # simclr_small_augself: AugSelf(crop, color) around it


def _check_d(ns: dict[str, Any], out: str, cwd: Path) -> None:
    assert tuple(ns["features"].shape) == (8, ns["backbone"].dim)


CHECKS: dict[str, Callable[[dict[str, Any], str, Path], None]] = {
    "(a)": _check_a,
    "(b)": _check_b,
    "(c)": _check_c,
    "(d)": _check_d,
}


@pytest.fixture(scope="module")
def api_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One working folder for the snippets, in page order ((d) reads the run (b) wrote), with configs/ linked."""
    d = tmp_path_factory.mktemp("api")
    (d / "configs").symlink_to(REPO / "configs")
    return d


def test_api_sections_are_known() -> None:
    sections = [_section_of(b)[:3] for b in API_BLOCKS]
    assert sections == list(SHRINK), "a snippet was added to or removed from docs/api.md: update SHRINK and CHECKS"


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    import os

    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.mark.parametrize("block", API_BLOCKS, ids=lambda b: _section_of(b)[:3])
def test_api_snippet_runs(block: docs_check.Block, api_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = _section_of(block)[:3]
    code = block.text
    for old, new in SHRINK[key]:
        assert old in code, f"docs/api.md {key}: {old!r} is gone; update SHRINK"
        code = code.replace(old, new)
    ns: dict[str, Any] = {"__name__": "__docs__"}
    with _cwd(api_dir):
        exec(compile(code, f"docs/api.md:{block.line}", "exec"), ns)  # the page's own snippet
    CHECKS[key](ns, capsys.readouterr().out, api_dir)


def test_readme_python_is_from_api_md() -> None:
    """README.md's Python blocks are copies of docs/api.md's, so the test above runs them too."""
    api = {b.text for b in API_BLOCKS}
    readme = [b for b in docs_check.fenced_blocks(REPO / "README.md") if b.lang == "python"]
    assert readme, "README.md has a Python API section"
    for b in readme:
        assert b.text in api, f"README.md:{b.line}: this Python block is not a snippet of docs/api.md"


# ---- cited paths, links, anchors, names ------------------------------------------------------------------------------
def _docs() -> list[Path]:
    return docs_check.doc_files()


def _prose(path: Path) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^\s*```.*?^\s*```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in _prose(path).splitlines():
        if line.startswith("#"):
            s = _slug(line.lstrip("#"))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def _links(path: Path) -> Iterator[str]:
    yield from re.findall(r"\]\(([^)\s]+)\)", _prose(path))


def _code_spans(path: Path) -> Iterator[str]:
    yield from re.findall(r"`([^`\n]+)`", _prose(path))


def test_links_and_anchors_resolve() -> None:
    bad = []
    for doc in _docs():
        for link in _links(doc):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            target, _, anchor = link.partition("#")
            f = (doc.parent / target).resolve() if target else doc
            if not f.exists():
                bad.append(f"{doc.relative_to(REPO)}: link to missing {link}")
            elif not f.is_relative_to(REPO):
                bad.append(f"{doc.relative_to(REPO)}: link outside the repository {link}")
            elif anchor and f.suffix == ".md" and anchor not in _anchors(f):
                bad.append(f"{doc.relative_to(REPO)}: no heading #{anchor} in {f.relative_to(REPO)}")
    assert not bad, "\n".join(bad)


def _cited_paths(doc: Path) -> Iterator[str]:
    """Repository paths in code spans and shell blocks: ``src/...``, ``configs/...``, ``tests/x.py::test_y``, ..."""
    pattern = re.compile(rf"^(?:\./)?((?:{'|'.join(REPO_DIRS)})/[\w./-]*)(::\w+)?$")
    spans = list(_code_spans(doc))
    for b in docs_check.fenced_blocks(doc):
        for c in docs_check.commands_in(b):
            spans += [t.split("=", 1)[-1] for t in c.argv]
    for s in spans:
        for word in s.split():
            m = pattern.match(word.rstrip(",;:)"))
            if m and not any(ch in word for ch in "<{*"):
                yield m.group(1) + (m.group(2) or "")


def test_cited_repository_paths_exist() -> None:
    bad = []
    for doc in _docs():
        for cited in _cited_paths(doc):
            path, _, test = cited.partition("::")
            f = REPO / path
            if path in NOTATION:
                continue
            if not f.exists():
                bad.append(f"{doc.relative_to(REPO)}: {cited} does not exist")
            elif test and not re.search(rf"^def {re.escape(test)}\(", f.read_text(), re.M):
                bad.append(f"{doc.relative_to(REPO)}: no test {test} in {path}")
    assert not bad, "\n".join(bad)


def test_no_files_outside_the_repository_are_cited() -> None:
    """``../shared/data/<set>`` (data sets, described in docs/benchmarks.md) is the one outside location named."""
    bad = []
    for doc in _docs():
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for m in re.finditer(r"\.\./shared/([\w.-]+)", line):
                if m.group(1) != "data":
                    bad.append(f"{doc.relative_to(REPO)}:{n}: cites {m.group(0)}, which is not in the repository")
    assert not bad, "\n".join(bad)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return False
        return True
    return False


def test_cited_python_names_exist() -> None:
    bad = []
    for doc in _docs():
        for span in _code_spans(doc):
            for name in re.findall(r"(?<![\w./])augself(?:\.\w+)+", span):
                if not _resolves(name):
                    bad.append(f"{doc.relative_to(REPO)}: {name} does not exist")
    assert not bad, "\n".join(bad)


# ---- augself command lines -------------------------------------------------------------------------------------------
def test_every_augself_command_line_parses() -> None:
    """Each ``augself ...`` line of a shell block parses with the CLI (options, sub-commands, overrides)."""
    bad = []
    for c in docs_check.all_commands():
        if c.argv[0] == "augself":
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    docs_check.parse_cli(c.argv[1:])
            except ValueError as e:
                bad.append(f"{c.where}: {c.text}: {e}")
    assert not bad, "\n".join(bad)


def test_every_augself_subcommand_mentioned_exists() -> None:
    """A code span ``augself <command> [<sub-command>] ...`` in prose names commands the CLI has."""
    commands = docs_check.cli_commands()
    bad = []
    for doc in _docs():
        for span in _code_spans(doc):
            for m in re.finditer(r"(?:^|&& |\| )augself ([a-z][\w-]*)(?: ([a-z][\w-]*))?", span):
                sub, subsub = m.group(1), m.group(2)
                if sub not in commands:
                    bad.append(f"{doc.relative_to(REPO)}: `{span}`: no command 'augself {sub}'")
                elif commands[sub] and subsub is not None and subsub not in commands[sub]:
                    bad.append(f"{doc.relative_to(REPO)}: `{span}`: no command 'augself {sub} {subsub}'")
    assert not bad, "\n".join(bad)


def test_docs_check_finds_and_classifies_commands() -> None:
    """The extraction of tools/docs_check.py: commands, continuation lines, env prefixes; output lines skipped."""
    block = docs_check.Block(
        REPO / "README.md",
        1,
        "bash",
        "# a comment\nAUGSELF_DATA=/x augself eval knn --backbone runs/a \\\n    --data synthetic   # note\n"
        "augself pretrain: error: not a command\nmake test\n",
    )
    cmds = docs_check.commands_in(block)
    assert [c.argv for c in cmds] == [
        ["augself", "eval", "knn", "--backbone", "runs/a", "--data", "synthetic"],
        ["make", "test"],
    ]
    assert cmds[0].env == {"AUGSELF_DATA": "/x"} and cmds[0].line == 3
    assert not docs_check.commands_in(docs_check.Block(REPO / "README.md", 1, "text", "augself demo\n"))
