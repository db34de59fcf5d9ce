"""Run every shell command of README.md and docs/*.md on generated data (``make docs-check``).

What counts as a command: each line of a fenced block tagged ``bash``, ``sh``, ``shell`` or untagged (backslash
continuations joined, ``# comments`` dropped) that starts, after optional ``VAR=value`` assignments, with
``augself``, ``python``, ``make`` or ``pytest`` (``.venv/bin/`` prefixes included). Other lines are example output
and are skipped (tag such blocks ``text``). Python blocks are executed by ``tests/test_docs.py``.

Each command is then either **run** or **validated**, and the script prints which, per command:

* run: in a fresh sandbox folder per code block (the commands of one block share it, in order, so a
  ``pretrain --out runs/mine`` feeds the ``eval --backbone runs/mine`` after it), in which ``configs/`` and
  ``benchmarks/`` link to the repository, with

  - placeholders mapped to generated image folders (``PLACEHOLDERS``): ``path/to/<name>`` -> a ``<class>/<image>``
    folder (``path/to/sets`` -> the folder holding the three transfer sets), ``../shared/data/<set>`` -> a
    ``<set>/{train,test}/<class>/<image>`` folder, and ``$AUGSELF_DATA`` -> the folder of those sets;
  - a run folder ``runs/<x>`` that a command reads (``--backbone``, ``--runs``, positional) and that no earlier
    command of the block wrote: a copy of one tiny pretrained run;
  - small settings appended (``SHRINK``; later options and ``key=value`` overrides win): pretraining stops after
    2 steps of batch 16 on 64 generated images, ``demo`` gets ``--quick --seeds 1``, evaluations fewer weight
    decays / episodes / images, ``transfer`` a copy of its suite with 3 weight decays and 5 episodes.
    A command repeated verbatim elsewhere (same environment, reading no ``runs/<x>``) is run once.
* validated, when running needs what this machine lacks: ``pretrain`` / ``eval`` / ``transfer`` on a named dataset
  that is not on disk (CIFAR, STL-10, ImageNet, the paper's transfer sets) or on a GPU / several GPUs: the command
  line is parsed by the ``augself`` CLI and its config (``load_config``: every key and value checked) or suite
  (``load_suite``) is loaded; ``python benchmarks/...`` (minutes to hours): ``--help`` appended, so the script
  imports and the given options parse; ``make <target>``: ``make -n`` (a dry run); ``pytest <files>``: the test
  files and functions exist.

``python tools/docs_check.py [FILES] [--only TEXT] [--list] [--keep DIR]``; exit status 1 when a command fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOOLS = {"augself", "python", "python3", "make", "pytest"}
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")

#: Placeholder paths in the docs and what they become in the sandbox (see the module docstring).
PLACEHOLDERS = {
    "path/to/sets": "the three transfer sets (cifar10-small, dtd10-64, food10-64), each {train,test}/<class>/<image>",
    "path/to/<name>": "a generated <class>/<image> folder (5 classes x 24 JPEGs, 40x32 px)",
    "../shared/data/<set>": "a generated <set>/{train,test}/<class>/<image> folder (5 classes x 20 + 6 JPEGs)",
    "$AUGSELF_DATA": "the folder holding the generated transfer sets",
}
#: Settings appended to commands that are run (later options / overrides win).
SHRINK: dict[str, list[str]] = {
    "pretrain": [
        "data.n=64",
        "trainer.epochs=1",
        "trainer.max_steps=2",
        "trainer.batch_size=16",
        "monitor.every_n_epochs=0",
        "data.num_workers=0",
    ],
    "demo": ["--quick", "--seeds", "1"],
    "linear": ["--wd-grid-size", "3", "--no-progress"],
    "linear --sgd": ["--epochs", "1"],
    "knn": ["--no-progress"],
    "fewshot": ["--episodes", "5", "--no-progress"],
    "awareness": ["--n", "64", "--no-progress"],
    "transfer": ["--no-progress"],
    "transfer suite": ["linear.wd_grid_size=3", "fewshot.episodes=5"],
}
TRANSFER_SETS = ("cifar10-small", "dtd10-64", "food10-64")
GPU_ACCELERATORS = {"gpu", "cuda", "mps", "tpu"}


# ---- extraction ----------------------------------------------------------------------------------------------------
@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str


@dataclass
class Command:
    block: Block
    line: int
    text: str  # as written (continuations joined)
    env: dict[str, str]
    argv: list[str]  # tool first

    @property
    def where(self) -> str:
        return f"{self.block.path.relative_to(REPO)}:{self.line}"


@dataclass
class Outcome:
    command: Command
    action: str  # "run" | "validated" | "failed"
    note: str = ""
    seconds: float = 0.0


def doc_files() -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their language tag and first line."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, lang, body = i + 1, m.group(2).lower(), []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append(Block(path, start, lang, "\n".join(body) + "\n"))
        i += 1
    return blocks


def _tool(token: str) -> str:
    name = token.removeprefix(".venv/bin/")
    return "python" if name == "python3" else name


def commands_in(block: Block) -> list[Command]:
    """The commands of a shell block (see the module docstring); output lines are skipped."""
    if block.lang not in SHELL_LANGS:
        return []
    out: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        first, text = i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:
            continue  # unbalanced quotes: example output, not a command
        env: dict[str, str] = {}
        while tokens and ENV_ASSIGN.match(tokens[0]):
            k, v = tokens.pop(0).split("=", 1)
            env[k] = v
        if not tokens or _tool(tokens[0]) not in TOOLS or (len(tokens) > 1 and tokens[1].endswith(":")):
            continue
        argv = [_tool(tokens[0]), *tokens[1:]]
        out.append(Command(block, block.line + 1 + first, text.strip(), env, argv))
    return out


def all_commands(files: Sequence[Path] | None = None) -> list[Command]:
    return [c for f in files or doc_files() for b in fenced_blocks(f) for c in commands_in(b)]


# ---- the augself command line, parsed as augself.cli.main does ----------------------------------------------------
def parse_cli(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``augself`` arguments (without the program name) like :func:`augself.cli.main`; ``ValueError`` with
    argparse's message when they do not parse."""
    from augself.cli import build_parser

    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, extra = parser.parse_known_args(list(argv))
            if "--verbose" in extra:  # also accepted after the command, as augself.cli.main does
                extra = [e for e in extra if e != "--verbose"]
    except SystemExit:
        raise ValueError(
            err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "cannot parse"
        ) from None
    if (
        extra
        and isinstance(getattr(args, "overrides", None), list)
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides.extend(extra)
    elif extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    return args


def cli_commands() -> dict[str, set[str]]:
    """``{subcommand: {sub-subcommands}}`` of the ``augself`` parser (``{"eval": {"linear", ...}, "demo": set()}``)."""
    from augself.cli import build_parser

    def choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                return dict(a.choices)
        return {}

    return {name: set(choices(sp)) for name, sp in choices(build_parser()).items()}


# ---- generated data ------------------------------------------------------------------------------------------------
def _write_images(folder: Path, n: int, label: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.array([(label * 53) % 256, (label * 97 + 80) % 256, (label * 31 + 160) % 256], dtype=np.float64)
    for i in range(n):
        img = np.clip(base + rng.normal(0, 40, (32, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.jpg", quality=90)


def class_folder(root: Path, classes: int = 5, per_class: int = 24) -> Path:
    """``root/<class>/<image>.jpg``, generated once."""
    if not root.is_dir():
        for c in range(classes):
            _write_images(root / f"class{c}", per_class, c, seed=c)
    return root


def split_folder(root: Path, classes: int = 5, train: int = 20, test: int = 6) -> Path:
    """``root/{train,test}/<class>/<image>.jpg``, generated once."""
    if not root.is_dir():
        for c in range(classes):
            _write_images(root / "train" / f"class{c}", train, c, seed=c)
            _write_images(root / "test" / f"class{c}", test, c, seed=100 + c)
    return root


class Sandbox:
    """Generated data and the tiny pretrained run, shared by every block; one working folder per block."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sets = root / "shared" / "data"
        for name in TRANSFER_SETS:
            split_folder(self.sets / name)
        self._base_run: Path | None = None
        self._blocks = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["AUGSELF_DATA"] = str(self.sets)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONWARNINGS"] = "ignore"
        return env

    def block_dir(self) -> Path:
        self._blocks += 1
        d = self.root / f"block{self._blocks:02d}"
        d.mkdir()
        for name in ("configs", "benchmarks"):
            (d / name).symlink_to(REPO / name)
        return d

    def map_token(self, token: str) -> str:
        """Placeholders -> generated folders (``PLACEHOLDERS``)."""

        def to(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "sets":
                return str(self.sets)
            return str(class_folder(self.root / "data" / name))

        token = re.sub(r"path/to/([\w.-]+)", to, token)
        token = re.sub(r"\.\./shared/data/([\w.-]+)", lambda m: str(split_folder(self.sets / m.group(1))), token)
        return token.replace("$AUGSELF_DATA", str(self.sets))

    def base_run(self) -> Path:
        """One tiny SimCLR run of the small CNN (2 steps) that every ``runs/<x>`` a command reads is a copy of."""
        if self._base_run is None:
            out = self.root / "base-run"
            cmd = [str(BIN / "augself"), "pretrain", "--config", str(REPO / "configs/cpu/simclr_small.yaml")]
            cmd += [*SHRINK["pretrain"], "--out", str(out)]
            r = subprocess.run(cmd, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"cannot make the tiny run: {r.stderr.strip()[-2000:]}")
            self._base_run = out
        return self._base_run

    def provide_runs(self, argv: list[str], cwd: Path) -> list[str]:
        """Copy the tiny run to every ``runs/<x>`` the command reads and that does not exist yet."""
        made: list[str] = []
        for i, tok in enumerate(argv):
            if not tok.startswith("runs/") or (i > 0 and argv[i - 1] == "--out"):
                continue
            target = cwd / tok
            if target.suffix in (".pt", ".ckpt"):
                target = target.parent
            if not target.exists():
                shutil.copytree(self.base_run(), target)
                made.append(tok)
        return made


# ---- per-command handling ------------------------------------------------------------------------------------------
def _repo_path(p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else REPO / p


def _runnable_data(name: str, cwd: Path) -> bool:
    """Generated (``synthetic``, ``synthetic_orientation``) or an image folder that exists here; named datasets are
    not on this machine."""
    from augself.data.registry import GENERATED

    return name in GENERATED or (cwd / name).is_dir()


def _pretrain_plan(args: argparse.Namespace, cwd: Path) -> str | None:
    """``None`` when the pretraining can run here, else why it is validated only (the config is loaded first)."""
    from augself.config import load_config

    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_config(_repo_path(args.config) if args.config else None, overrides)
    t = cfg.trainer
    if str(t.accelerator) in GPU_ACCELERATORS or str(t.precision).startswith("16"):
        return f"needs a GPU (trainer.accelerator={t.accelerator}, trainer.precision={t.precision}); config loaded"
    if str(t.accelerator) != "cpu" and str(t.devices) not in ("1", "auto"):
        return f"needs {t.devices} GPUs; config loaded"
    if not _runnable_data(cfg.data.name, cwd):
        return f"data {cfg.data.name!r} (root {cfg.data.root}) is not on this machine; config loaded"
    return None


def _suite_plan(suite: Path, cwd: Path) -> tuple[str | None, Path | None]:
    """(why it is validated, None) for a suite over named datasets, else (None, a shrunk copy of the suite)."""
    import yaml

    from augself.data.registry import DATASETS
    from augself.eval.transfer import load_suite

    spec = load_suite(suite)  # parses it and checks every folder (named sets: their names)
    named = [d["name"] for d in spec["datasets"] if d["data"].kind == "named"]
    if named:
        return f"named datasets not on this machine ({', '.join(named[:3])}, ...); suite loaded", None
    raw = yaml.safe_load(suite.read_text())
    raw.setdefault("defaults", {})
    for item in SHRINK["transfer suite"]:
        key, value = item.split("=")
        proto, setting = key.split(".")
        raw["defaults"].setdefault(proto, {})[setting] = int(value)
    for d in raw["datasets"]:  # relative folders keep pointing where they did
        data = str(d["data"])
        if data not in DATASETS and data != "synthetic" and not data.startswith(("/", "$")):
            d["data"] = str((suite.parent / data).resolve())
    copy = cwd / f"{suite.stem}-docs-check.yaml"
    copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    return None, copy


def _eval_plan(args: argparse.Namespace, cwd: Path) -> str | None:
    if _runnable_data(args.data, cwd):
        return None
    from augself.data.registry import DATASETS, dataset_info

    if args.data in DATASETS:
        dataset_info(args.data)
        return f"named dataset {args.data!r} is not on this machine; command line parsed"
    return f"data {args.data!r} is not on this machine; command line parsed"


def _shrink_eval(args: argparse.Namespace) -> list[str]:
    extra = list(SHRINK[args.protocol])
    if args.protocol == "linear" and getattr(args, "sgd", False):
        extra += SHRINK["linear --sgd"]
    return extra


def handle(cmd: Command, box: Sandbox, cwd: Path, dry: bool = False) -> Outcome:
    """Run or validate one command in ``cwd`` (the block's sandbox folder)."""
    t0 = time.perf_counter()
    tool, rest = cmd.argv[0], cmd.argv[1:]
    env = box.env()
    for k, v in cmd.env.items():
        env[k] = box.map_token(v)
    try:
        with _environ(env):  # in-process checks (load_config, load_suite) see the command's environment
            return _handle(cmd, tool, rest, box, cwd, env, dry, t0)
    except (ValueError, OSError, RuntimeError, subprocess.SubprocessError) as e:
        return Outcome(cmd, "failed", str(e), time.perf_counter() - t0)


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _handle(
    cmd: Command, tool: str, rest: list[str], box: Sandbox, cwd: Path, env: dict[str, str], dry: bool, t0: float
) -> Outcome:
    if tool == "make":
        plan = f"make -n {' '.join(rest)} (dry run)"
        if not dry:
            _check([shutil.which("make") or "make", "-n", "-C", str(REPO), *rest], REPO, env)
        return Outcome(cmd, "validated", plan, time.perf_counter() - t0)
    if tool == "pytest":
        for item in rest:
            _check_test_id(item)
        return Outcome(cmd, "validated", "test files and functions exist", time.perf_counter() - t0)
    if tool == "python":
        if not rest or not rest[0].startswith("benchmarks/"):
            raise ValueError(f"unexpected python command in the docs: {cmd.text}")
        if not dry:
            _check([str(BIN / "python"), *[box.map_token(t) for t in rest], "--help"], REPO, env)
        return Outcome(cmd, "validated", "benchmark script: --help (imports, options parse)", time.perf_counter() - t0)
    argv = [box.map_token(t) for t in rest]
    args = parse_cli(argv)
    why: str | None = None
    extra: list[str] = []
    if args.command == "pretrain":
        why = _pretrain_plan(args, cwd)
        extra = SHRINK["pretrain"]
    elif args.command == "eval":
        why = _eval_plan(args, cwd)
        extra = _shrink_eval(args)
    elif args.command == "transfer":
        why, copy = _suite_plan(_suite_path(args.suite, cwd), cwd)
        extra = SHRINK["transfer"]
        if copy is not None:
            argv = _replace_option(argv, "--suite", str(copy))
    elif args.command == "demo":
        extra = SHRINK["demo"]
    if why is not None:
        return Outcome(cmd, "validated", why, time.perf_counter() - t0)
    if dry:
        return Outcome(cmd, "run", "would run with " + " ".join(extra), 0.0)
    made = box.provide_runs(argv, cwd)
    _check([str(BIN / "augself"), *argv, *extra], cwd, env)
    note = ("appended: " + " ".join(extra)) if extra else ""
    if made:
        note += f"; tiny run copied to {', '.join(made)}"
    return Outcome(cmd, "run", note.strip("; "), time.perf_counter() - t0)


def _suite_path(suite: str, cwd: Path) -> Path:
    p = Path(suite)
    return p if p.is_absolute() else (cwd / p).resolve()


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def _check_test_id(item: str) -> None:
    path, _, name = item.partition("::")
    f = REPO / path
    if not f.is_file():
        raise ValueError(f"no test file {path}")
    if name and not re.search(rf"^def {re.escape(name)}\(", f.read_text(), re.M):
        raise ValueError(f"no test {name} in {path}")


def _check(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"exit status {r.returncode}: {' | '.join(tail)}")


def _reads_runs(argv: Sequence[str]) -> bool:
    """Whether a command reads a ``runs/<x>`` folder (its result then depends on the commands before it)."""
    return any(t.startswith("runs/") and (i == 0 or argv[i - 1] != "--out") for i, t in enumerate(argv))


def check(files: Sequence[Path] | None, only: str | None, dry: bool, keep: Path | None) -> list[Outcome]:
    """Handle every command of ``files`` (default: README.md and docs/*.md); print one line per command."""
    tmp = keep or Path(tempfile.mkdtemp(prefix="augself-docs-check-"))
    tmp.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    ran_alone: dict[tuple[object, ...], str] = {}
    try:
        box = Sandbox(tmp)
        for f in files or doc_files():
            for block in fenced_blocks(f):
                cmds = [c for c in commands_in(block) if only is None or only in c.text]
                if not cmds:
                    continue
                cwd = box.block_dir()
                for c in cmds:
                    key = (*sorted(c.env.items()), *c.argv)
                    if key in ran_alone:  # the same self-contained command already ran (README and docs/ repeat some)
                        o = Outcome(c, "run", f"same command as {ran_alone[key]}, which ran")
                    else:
                        o = handle(c, box, cwd, dry=dry)
                        if o.action == "run" and not dry and not _reads_runs(c.argv):
                            ran_alone[key] = c.where
                    outcomes.append(o)
                    print(f"[{o.action:9s} {o.seconds:6.1f}s] {o.command.where}: {o.command.text}", flush=True)
                    if o.note:
                        print(f"{'':20s}{o.note}", flush=True)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    n = {a: sum(o.action == a for o in outcomes) for a in ("run", "validated", "failed")}
    lines = [f"docs-check: {len(outcomes)} commands: {n['run']} run, {n['validated']} validated, {n['failed']} failed"]
    lines += [
        f"  FAILED {o.command.where}: {o.command.text}\n         {o.note}" for o in outcomes if o.action == "failed"
    ]
    return "\n".join(lines)


def iter_python_blocks(files: Sequence[Path] | None = None) -> Iterator[Block]:
    for f in files or doc_files():
        yield from (b for b in fenced_blocks(f) if b.lang == "python")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/*.md)")
    p.add_argument("--only", help="handle only the commands that contain this text")
    p.add_argument("--list", action="store_true", help="classify (run / validated) without running anything")
    p.add_argument("--keep", type=Path, help="sandbox folder to use and keep (default: a temporary one, removed)")
    a = p.parse_args(argv)
    files = [f.resolve() for f in a.files] or None
    outcomes = check(files, a.only, a.list, a.keep)
    print(summary(outcomes))
    run_by_tests = {REPO / "README.md", REPO / "docs" / "api.md"}
    other = [b for b in iter_python_blocks(files) if b.path not in run_by_tests]
    print("python blocks: those of README.md and docs/api.md are executed by tests/test_docs.py", end="")
    print("; not executed: " + ", ".join(f"{b.path.relative_to(REPO)}:{b.line}" for b in other) if other else "")
    return 1 if any(o.action == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
