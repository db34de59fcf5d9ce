"""``augself eval {linear,knn,fewshot,awareness}`` end to end on a tiny generated image folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from augself.cli import main
from augself.eval.backbone_loading import read_preprocessing
from augself.models import build_backbone, save_backbone


def make_run(run: Path, seed: int = 0, size: int = 16) -> Path:
    """A run directory with a random small_cnn ``backbone.pt`` and a ``config.yaml`` naming its view size."""
    torch.manual_seed(seed)
    save_backbone(build_backbone("small_cnn", widths=(8, 16)), run / "backbone.pt")
    (run / "config.yaml").write_text(
        f"augment:\n  size: {size}\n  mean: [0.4, 0.5, 0.6]\n  std: [0.2, 0.25, 0.3]\n  views: [{{}}, {{}}]\n"
    )
    return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, colour_folder: Callable[..., Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("evalcli")
    return {"data": colour_folder(base / "colours"), "run": make_run(base / "run"), "base": base}


def _load(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text())


def _stem(data: Path) -> str:
    """The default output name of ``data``: its folder name and 8 hex digits of its resolved path's SHA-256."""
    import hashlib

    return f"{data.name}-{hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]}"


def test_linear_writes_json_next_to_run(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, data = setup["run"], setup["data"]
    rc = main(["eval", "linear", "--backbone", str(run), "--data", str(data), "--wd-grid-size", "3", "--no-progress"])
    assert rc == 0
    out = run / "eval" / f"linear-{_stem(data)}.json"
    rec = _load(out)
    assert {"protocol", "dataset", "metrics", "settings", "backbone", "preprocessing"} <= set(rec)
    assert rec["protocol"] == "linear" and rec["dataset"] == "colours"
    m = rec["metrics"]
    assert 0.0 <= m["top1"] <= 100.0 and 0.0 <= m["class-avg"] <= 100.0
    assert m["top1"] > 60.0  # colour classes; chance is 33 %
    assert any(m["best_wd"] == pytest.approx(w) for w in np.logspace(-6, 5, 3))
    assert rec["settings"]["wd_grid_size"] == 3 and rec["settings"]["metric"] == "top1"
    assert len(rec["details"]["val_curve"]) == 3
    # the pretraining preprocessing of the run's config.yaml is used
    pre = rec["preprocessing"]
    assert pre["size"] == 16 and pre["mean"] == [0.4, 0.5, 0.6] and "config" in pre["source"]
    assert rec["details"]["num_test"] == 24 and rec["details"]["num_train"] + rec["details"]["num_val"] == 36
    printed = capsys.readouterr().out
    assert "linear on colours" in printed and str(out) in printed


def test_knn_settings_size_override_and_cache(setup: dict[str, Path], tmp_path: Path) -> None:
    run, data = setup["run"], setup["data"]
    args = ["eval", "knn", "--backbone", str(run / "backbone.pt"), "--data", str(data), "--k", "7", "--t", "0.2"]
    args += ["--size", "8", "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    cached = sorted((tmp_path / "cache").glob("*.pt"))
    assert len(cached) == 2  # train + test features
    mtimes = [p.stat().st_mtime_ns for p in cached]
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 0
    assert [p.stat().st_mtime_ns for p in cached] == mtimes  # second run read the cache
    a, b = _load(tmp_path / "a.json"), _load(tmp_path / "b.json")
    assert a["metrics"] == b["metrics"]
    assert a["settings"]["k"] == 7 and a["settings"]["t"] == 0.2
    assert a["preprocessing"]["size"] == 8
    assert a["details"]["num_memory"] == 36 and a["details"]["effective_k"] == 7
    assert 0.0 <= a["metrics"]["top1"] <= 100.0


def test_fewshot_episodes_and_ci(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fs.json"
    args = f"eval fewshot --backbone {setup['run']} --data {setup['data']} --ways 3 --shots 1 2 --queries 3"
    rc = main([*args.split(), *f"--episodes 20 --seed 3 --out {out} --no-progress".split()])
    assert rc == 0
    rec = _load(out)
    assert set(rec["metrics"]) == {"3way1shot", "3way2shot"}
    for v in rec["metrics"].values():
        assert 0.0 <= v["mean"] <= 100.0 and v["ci95"] >= 0.0 and v["episodes"] == 20
    s = rec["settings"]
    assert (s["ways"], s["shots"], s["queries"], s["episodes"], s["seed"]) == (3, [1, 2], 3, 20, 3)
    assert rec["details"]["pool_size"] == 60  # train + test of the folder


def test_sgd_probe_option(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sgd.json"
    args = f"eval linear --backbone {setup['run']} --data {setup['data']} --sgd --epochs 2 --batch-size 16"
    rc = main([*args.split(), "--out", str(out), "--no-progress"])
    assert rc == 0
    rec = _load(out)
    assert rec["settings"]["sgd"] is True and rec["settings"]["probe"]["epochs"] == 2
    assert len(rec["details"]["train_loss"]) == 2
    assert 0.0 <= rec["metrics"]["top1"] <= 100.0


def test_plain_backbone_needs_size(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.pt"
    shutil.copy(setup["run"] / "backbone.pt", plain)
    args = ["eval", "knn", "--backbone", str(plain), "--data", str(setup["data"]), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size" in err[0]
    assert main([*args, "--size", "16"]) == 0
    rec = _load(tmp_path / "eval" / f"knn-{_stem(setup['data'])}.json")
    assert rec["preprocessing"]["source"] == "command line" and rec["preprocessing"]["mean"] == [0.5, 0.5, 0.5]


def test_preprocessing_reads_view0_override(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("augment:\n  size: 32\n  std: [0.3, 0.3, 0.3]\n  views: [{size: 24}, {}]\n")
    pre, run_dir = read_preprocessing(tmp_path / "backbone.pt", ckpt={})
    assert pre.size == 24 and pre.std == (0.3, 0.3, 0.3) and run_dir == tmp_path
    pre, _ = read_preprocessing(tmp_path / "backbone.pt", ckpt={"meta": {"size": 40, "mean": [0.1] * 3}})
    assert pre.size == 40 and pre.mean == (0.1, 0.1, 0.1) and "metadata" in pre.source


@pytest.mark.parametrize(
    ("which", "expect"),
    [
        ("backbone", "backbone not found"),
        ("data", "does not exist"),
        ("name", "Did you mean 'cifar10'"),
        ("shots", "few-shot needs"),
    ],
)
def test_bad_input_exit_2(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, expect: str
) -> None:
    backbone = str(tmp_path / "nope" / "backbone.pt") if which == "backbone" else str(setup["run"])
    data = {"data": str(tmp_path / "missing"), "name": "cifar-10"}.get(which, str(setup["data"]))
    proto = ["fewshot", "--shots", "0"] if which == "shots" else ["linear"]
    rc = main(["eval", proto[0], "--backbone", backbone, "--data", data, *proto[1:], "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert first.startswith("augself eval: error:") and expect in first
    if which in ("backbone", "shots", "name"):
        assert len(err.strip().splitlines()) == 1
    else:
        assert "Expected layout" in err  # a missing folder shows the layout it looks for


def test_awareness_wiring(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import augself.eval.awareness as aw

    calls: list[dict[str, Any]] = []

    def fake(backbones: list[Any], data: str, out: Path, **kw: Any) -> dict[str, Any]:
        calls.append({"backbones": backbones, "data": data, "out": out, **kw})
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "awareness.json").write_text("{}")
        return {"runs": [{}, {}]}

    monkeypatch.setattr(aw, "run_awareness", fake)
    run = str(setup["run"])
    rc = main(["eval", "awareness", "--backbone", run, run, "--data", "synthetic", "--n", "64", "--seed", "2"])
    assert rc == 0
    (c,) = calls
    assert c["backbones"] == [run, run] and c["data"] == "synthetic"
    assert (c["n"], c["seed"], c["size"], c["device"]) == (64, 2, None, "auto")
    assert Path(c["out"]) == setup["run"] / "eval" / "awareness-synthetic"
    assert main(["eval", "awareness", "--backbone", run, "missing-run", "--data", "synthetic"]) == 2
    assert len(calls) == 1  # a missing backbone fails before the report starts
