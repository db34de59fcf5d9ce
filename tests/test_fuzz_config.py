"""Fuzz test of the config loader (issue 13, "Also"): random YAML documents and ``key=value`` overrides.

Property: :func:`augself.config.load_config` followed by :func:`augself.preflight.preflight` (everything
``augself pretrain`` checks before it creates the run folder) either returns a valid config or raises
:class:`augself.config.ConfigError` with one non-empty line -- never another exception (a traceback, exit 1).
Through the CLI the same inputs give exit status 0 or 2 with one ``augself pretrain: error:`` line.

Bounded for the suite (about 10 s on 2 cores); derandomised, so a fresh clone runs the same examples. For a longer
random search: ``AUGSELF_FUZZ_EXAMPLES=5000 AUGSELF_FUZZ_RANDOM=1 pytest tests/test_fuzz_config.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from augself.config import ConfigError, PretrainConfig, load_config, to_yaml
from augself.config_checks import schema_hints
from augself.preflight import preflight

SETTINGS = settings(
    max_examples=int(os.environ.get("AUGSELF_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=not os.environ.get("AUGSELF_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _schema_keys(cls: type, prefix: str = "") -> Iterator[str]:
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = schema_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _schema_keys(tp, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            yield prefix + f.name


KEYS = sorted(_schema_keys(PretrainConfig))
EXTRA_KEYS = ["augself.crop", "augself.color", "method_args.temperature", "method_args.queue_size", "method_args.x"]
NAMES = st.sampled_from(sorted({k.rsplit(".", 1)[-1] for k in KEYS} | {"crop", "color", "base", "trainer", "views"}))
WORDS = st.sampled_from(
    ["simclr", "moco", "byol", "swav", "supervised", "small_cnn", "resnet18", "timm:resnet18", "cpu", "gpu", "cuda",
     "auto", "csv", "tensorboard", "wandb", "32-true", "bf16-mixed", "ddp", "fsdp", "synthetic", "train", "-1", "0",
     "1e-3", ".inf", ".nan", "~", "null", "true", "[]", "{}", "[0.2, 1.0]", "${seed}", "${x}", "${oc.env:HOME}",
     "${oc.decode:'[1'}", "caf\udcff", "\u00e9t\u00e9", "a\tb", "*x", "&x 1", "!!binary aGk=", "2001-01-01"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    WORDS,
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4), max_leaves=8
)
YAML_CHARS = st.sampled_from([*"abcxyz019.-+eE_ []{}:,'\"!&*#|>%@`$\\\t\n=?~", "\udcff", "\u00e9", "\x00"])
NOISE = st.text(YAML_CHARS, max_size=24)


def _flow(value: Any) -> str:
    """``value`` as one line of flow YAML (as a user would type it after ``key=``)."""
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    except (yaml.YAMLError, UnicodeError):
        return str(value)
    return text.removesuffix("\n").removesuffix("\n...").strip()


OVERRIDES = st.builds(
    lambda key, value: f"{key}={value}",
    st.sampled_from(KEYS + EXTRA_KEYS) | st.text(YAML_CHARS, max_size=10),
    st.one_of(VALUES.map(_flow), WORDS, NOISE),
) | st.text(YAML_CHARS, max_size=20)


def _nested(draw: st.DrawFn) -> dict[str, Any]:
    """A config-shaped document: known sections and keys (some misspelt) with random values."""
    doc: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS + EXTRA_KEYS), max_size=6)):
        node = doc
        *parents, leaf = key.split(".")
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = draw(VALUES)
    return doc


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["config", "mutated", "noise"]))
    if kind == "noise":
        return draw(NOISE)
    try:
        text = yaml.safe_dump(_nested(draw), allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, UnicodeError):
        text = ""
    if kind == "mutated" and text:
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["duplicate", "insert", "delete"]))
        if action == "duplicate":  # often a duplicate key
            lines.insert(i, lines[i])
        elif action == "insert":
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + draw(NOISE) + lines[i][pos:]
        else:
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + lines[i][pos + 1 :]
        text = "".join(lines)
    return text


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _write(folder: Path, text: str) -> Path:
    path = folder / "fuzz.yaml"
    try:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def _check_one_line(e: ConfigError) -> None:
    msg = str(e)
    assert msg.strip() and "\n" not in msg and "Traceback" not in msg, repr(msg)


def _load_and_preflight(path: Path | None, overrides: list[str]) -> PretrainConfig | None:
    """A valid config, or ``None`` after checking the one-line error; any other exception fails the test."""
    try:
        cfg = load_config(path, overrides)
        preflight(cfg)
    except ConfigError as e:
        _check_one_line(e)
        return None
    assert isinstance(cfg, PretrainConfig)
    return cfg


@SETTINGS
@given(overrides=st.lists(OVERRIDES, max_size=4))
def test_random_overrides(overrides: list[str]) -> None:
    _load_and_preflight(None, overrides)


@SETTINGS
@given(text=yaml_documents(), overrides=st.lists(OVERRIDES, max_size=2))
def test_random_yaml_documents(text: str, overrides: list[str], workdir: Path) -> None:
    cfg = _load_and_preflight(_write(workdir, text), overrides)
    if cfg is not None:  # what a run writes to config.yaml loads back to the same config
        assert load_config(_write(workdir, to_yaml(cfg))) == cfg


@settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 3))
@given(text=yaml_documents(), overrides=st.lists(OVERRIDES, max_size=3))
def test_cli_exit_status_is_0_or_2(text: str, overrides: list[str], workdir: Path) -> None:
    """Through ``augself pretrain``: run_pretrain stops after its preflight (no training, nothing written)."""
    from augself.cli import main

    def preflight_only(cfg: PretrainConfig, **kwargs: object) -> Path:
        preflight(cfg)
        return Path(cfg.out)

    stderr = io.StringIO()
    argv = ["pretrain", "--config", str(_write(workdir, text)), *overrides]
    with (
        mock.patch("augself.train.run.run_pretrain", preflight_only),
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: an override that looks like an option
            rc = e.code
    err = stderr.getvalue()
    assert rc in (0, 2), err
    assert "Traceback" not in err
    if rc == 2 and "usage:" not in err:
        assert len(err.strip().splitlines()) == 1 and err.startswith("augself pretrain: error: "), err
