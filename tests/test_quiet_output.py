"""A normal run prints its data line, batch plan and final line; ``--verbose`` brings Lightning's output back.

The checks do not depend on one Lightning version's wording: they assert on augself's filter mechanism
(:mod:`augself.quiet`) and on the absence of the known noisy phrases, whichever of them a version prints.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from augself.cli import main
from augself.quiet import KNOWN_WARNINGS, LIGHTNING_LOGGERS, quiet_lightning, quiet_output

TINY = [
    "data.name=synthetic",
    "data.n=64",
    "data.size=16",
    "data.num_workers=0",
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.batch_size=32",  # 2 batches per epoch: below the default log_every_n_steps=10
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.epochs=1",
    "monitor.online_probe=false",
]

NOISE = (
    "GPU available",
    "TPU available",
    "HPU available",
    "litlogger",
    "LitLogger",
    "Tip:",
    "log_every_n_steps",
    "logging interval",
    "LeafSpec",
    "Loading `train_dataloader`",
    "`Trainer.fit` stopped",
    "does not have many workers",
    "DeprecationWarning",
    "FutureWarning",
)
"""Phrases of Lightning's info lines and of the dependency warnings a normal run used to print."""


def _noise(text: str) -> list[str]:
    return [n for n in NOISE if n in text]


def test_normal_run_prints_only_its_own_lines(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # Lightning's records reach pytest's handler too when they propagate
    assert main(["pretrain", "--out", str(tmp_path / "run"), *TINY]) == 0
    out, err = capfd.readouterr()
    assert _noise(out + err + caplog.text) == []
    lines = out.splitlines()
    assert lines[0].startswith("data: 64 images")
    assert lines[1].startswith("global batch 32")
    assert lines[-1].startswith(f"run directory: {tmp_path / 'run'}")
    assert len(lines) == 3
    assert sum("run directory" in line for line in lines) == 1


def test_verbose_brings_lightning_output_back(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["pretrain", "--out", str(tmp_path / "run"), *TINY, "--verbose"]) == 0
    out, err = capfd.readouterr()
    # every Lightning 2.x reports the devices it found ("GPU available: ..., used: ...") at INFO level
    assert "available" in out + err + caplog.text
    assert out.splitlines()[-1].startswith("run directory: ")


def test_quiet_output_filters_only_known_dependency_warnings() -> None:
    """Known warnings, attributed to a Lightning module, are hidden; augself's own and unknown ones are not."""
    lightning_module = "lightning.pytorch.trainer.trainer"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # not the project's pytest filters (they hide Lightning's UserWarnings)
        with quiet_output():  # its filters go in front of "always"
            for w in KNOWN_WARNINGS:
                warnings.warn_explicit(w.example, w.category, "x.py", 1, module=w.source)
            assert seen == []
            warnings.warn_explicit(KNOWN_WARNINGS[0].example, FutureWarning, "x.py", 1, module="augself.data.folder")
            warnings.warn_explicit("skipped 3 corrupt image(s)", UserWarning, "x.py", 1, module="augself.data.folder")
            warnings.warn_explicit("something new", UserWarning, "x.py", 1, module=lightning_module)
        assert [str(w.message) for w in seen] == [
            KNOWN_WARNINGS[0].example,
            "skipped 3 corrupt image(s)",
            "something new",
        ]
        with quiet_output(verbose=True):
            for w in KNOWN_WARNINGS:
                warnings.warn_explicit(w.example, w.category, "x.py", 1, module=w.source)
        assert len(seen) == 3 + len(KNOWN_WARNINGS)


def test_lightning_loggers_are_raised_and_restored() -> None:
    import lightning.pytorch  # noqa: F401  (it sets its logger's level when imported)

    before = {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS}
    quiet_lightning()  # outside quiet_output: nothing changes
    assert {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS} == before
    with quiet_output():
        quiet_lightning()
        assert all(logging.getLogger(n).getEffectiveLevel() >= logging.WARNING for n in LIGHTNING_LOGGERS)
    assert {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS} == before
    with quiet_output(verbose=True):
        quiet_lightning()
        assert {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS} == before


@pytest.mark.parametrize(("env", "lines"), [({}, 1), ({"LOCAL_RANK": "1"}, 0), ({"RANK": "0"}, 1)])
def test_final_line_once_per_run_not_per_ddp_process(
    env: dict[str, str], lines: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under DDP every process runs the command; only launch rank 0 prints the run directory."""
    import augself.train.run

    monkeypatch.setattr(augself.train.run, "run_pretrain", lambda cfg, **kw: Path(cfg.out))
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["pretrain", "--out", str(tmp_path / "run"), *TINY]) == 0
    assert capsys.readouterr().out.count("run directory: ") == lines
