"""``augself transfer``: suite parsing, results.json / results.md / results.png with the difference column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from augself.cli import main
from augself.eval.report import headlines, markdown_table
from augself.eval.transfer import load_suite
from augself.models import build_backbone, save_backbone

SUITE = """
name: tiny
defaults:
  linear: {wd_grid_size: 3}
  fewshot: {ways: 3, shots: [1, 2], queries: 3, episodes: 20}
datasets:
  - name: colours
    data: data/colours          # relative to this file
    protocols: [linear, {knn: {k: 5}}, {fewshot: {shots: [2]}}]
"""


def make_run(run: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_backbone(build_backbone("small_cnn", widths=(8, 16)), run / "backbone.pt")
    (run / "config.yaml").write_text("augment:\n  size: 16\n  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n")
    return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, colour_folder: Callable[..., Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("transfer")
    colour_folder(base / "suite" / "data" / "colours", n_train=10, n_test=10)
    (base / "suite" / "tiny.yaml").write_text(SUITE)
    return {
        "suite": base / "suite" / "tiny.yaml",
        "run1": make_run(base / "baseline", seed=0),
        "run2": make_run(base / "augself", seed=1),
        "base": base,
    }


def test_transfer_writes_three_files(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the suite's relative data path must not depend on the working directory
    out = tmp_path / "out"
    runs = [str(setup["run1"]), str(setup["run2"] / "backbone.pt")]
    rc = main(["transfer", "--suite", str(setup["suite"]), "--runs", *runs, "--out", str(out), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in res["runs"]] == ["baseline", "augself"]
    assert len(res["results"]) == 2 * 3  # runs x protocols
    assert {r["protocol"] for r in res["results"]} == {"linear", "knn", "fewshot"}
    for r in res["results"]:
        for label, v, ci in headlines(r):
            assert 0.0 <= v <= 100.0, (label, v)
            assert ci is None or ci >= 0.0
    assert next(r for r in res["results"] if r["protocol"] == "knn")["settings"]["k"] == 5
    assert next(r for r in res["results"] if r["protocol"] == "fewshot")["settings"]["shots"] == [2]
    rows = res["table"]
    assert [r["metric"] for r in rows] == ["linear top1", "knn top1 (k=5, T=0.1)", "3-way 2-shot"]
    assert all(len(r["values"]) == 2 and None not in r["values"] for r in rows)
    md = (out / "results.md").read_text()
    assert "| dataset | protocol / metric | baseline | augself | Δ augself |" in md
    first = rows[0]["values"]
    assert f"{first[1] - first[0]:+.2f} |" in md.splitlines()[-len(rows)]
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "features").glob("*.pt"))) == 4  # train + test per run, shared by the protocols
    assert "Δ augself" in capsys.readouterr().out


def test_interrupted_suite_resumes_from_saved_results(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import augself.eval.transfer as tr

    calls: list[tuple[str, str]] = []
    real = tr.run_protocol

    def counting(protocol: str, src: Any, settings: dict | None = None) -> dict:
        calls.append((src.lb.label, protocol))
        if len(calls) == 3 and crash:  # the first run's linear and knn finish, its few-shot is interrupted
            raise KeyboardInterrupt
        return real(protocol, src, settings)

    monkeypatch.setattr(tr, "run_protocol", counting)
    runs, out = [setup["run1"], setup["run2"]], tmp_path / "out"
    crash = True
    with pytest.raises(KeyboardInterrupt):
        tr.run_transfer(setup["suite"], runs, out, progress=False, log=None)
    assert len(list((out / "records").glob("*.json"))) == 2  # what finished is on disk
    crash, calls[:] = False, []
    first = tr.run_transfer(setup["suite"], runs, out, progress=False, log=None)
    assert calls == [("baseline", "fewshot"), ("augself", "linear"), ("augself", "knn"), ("augself", "fewshot")]
    calls.clear()
    again = tr.run_transfer(setup["suite"], runs, out, progress=False, log=None)
    assert calls == [] and again["table"] == first["table"]  # everything reused, same numbers
    changed = setup["suite"].parent / "changed.yaml"
    changed.write_text(setup["suite"].read_text().replace("episodes: 20", "episodes: 21"))
    tr.run_transfer(changed, runs, out, progress=False, log=None)
    assert calls == [("baseline", "fewshot"), ("augself", "fewshot")]  # only what the change touches
    calls.clear()
    tr.run_transfer(changed, runs, out, progress=False, log=None, resume=False)
    assert len(calls) == 6


def test_markdown_difference_column() -> None:
    rows = [
        {"dataset": "a", "metric": "linear top1", "values": [80.0, 82.5, 79.0], "ci": [None] * 3},
        {"dataset": "a", "metric": "5-way 5-shot", "values": [60.0, None, 61.0], "ci": [1.0, None, 0.5]},
    ]
    md = markdown_table(rows, ["r1", "r2", "r3"]).splitlines()
    assert md[0] == "| dataset | protocol / metric | r1 | r2 | r3 | Δ r2 | Δ r3 |"
    assert md[2] == "| a | linear top1 | 80.00 | 82.50 | 79.00 | +2.50 | -1.00 |"
    assert md[3] == "| a | 5-way 5-shot | 60.00 ± 1.00 | n/a | 61.00 ± 0.50 | n/a | +1.00 |"


def test_suite_resolves_relative_to_its_file(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup["base"])
    s = load_suite(setup["suite"])
    (d,) = s["datasets"]
    assert d["data"].path == (setup["suite"].parent / "data" / "colours").resolve()
    assert d["protocols"]["fewshot"] == {"ways": 3, "shots": [2], "queries": 3, "episodes": 20}
    assert d["protocols"]["linear"] == {"wd_grid_size": 3}


def test_example_suite_parses() -> None:
    p = Path(__file__).resolve().parents[1] / "configs" / "transfer" / "small.yaml"
    import yaml

    raw = yaml.safe_load(p.read_text())
    names = [d["name"] for d in raw["datasets"]]
    assert names == ["cifar10-small", "dtd10-64", "food10-64"]
    assert raw["defaults"]["fewshot"]["shots"] == [5] and raw["defaults"]["fewshot"]["ways"] == 5
    assert all(d["protocols"] == ["linear", "fewshot"] for d in raw["datasets"])


def test_paper_suite_parses() -> None:
    s = load_suite(Path(__file__).resolve().parents[1] / "configs" / "transfer" / "paper.yaml")
    by_protocol: dict[str, list[str]] = {}
    for d in s["datasets"]:
        assert d["data"].kind == "named"
        for p in d["protocols"]:
            by_protocol.setdefault(p, []).append(d["name"])
    assert by_protocol["linear"] == [
        *("cifar10", "cifar100", "food101", "mit67", "pets", "flowers"),
        *("caltech101", "cars", "aircraft", "dtd", "sun397"),
    ]
    assert by_protocol["fewshot"] == ["fc100", "cub200", "plant_disease"]
    fs = s["datasets"][-1]["protocols"]["fewshot"]
    assert (fs["ways"], fs["shots"], fs["queries"], fs["episodes"]) == (5, [1, 5], 16, 2000)
    assert s["datasets"][0]["protocols"]["linear"] == {"wd_grid_size": 45}


def test_missing_named_datasets_reported_together_before_work(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "named.yaml"
    p.write_text(
        "datasets:\n  - {data: data/colours, protocols: [linear]}\n".replace(  # relative to the suite: missing here...
            "data/colours", str(setup["suite"].parent / "data" / "colours")
        )
        + f"  - {{data: dtd, root: {tmp_path / 'nothing'}, protocols: [linear]}}\n"
        + f"  - {{data: fc100, root: {tmp_path / 'nothing'}, protocols: [fewshot]}}\n"
    )
    rc = main(["transfer", "--suite", str(p), "--runs", str(setup["run1"]), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "2 dataset(s) of the suite cannot be read" in err and "Traceback" not in err
    assert "* dtd: DTD not found" in err and "* fc100: FC100 not found" in err
    assert err.count("Expected layout") == 2
    assert not (tmp_path / "o").exists()  # nothing evaluated, nothing written


def test_transfer_size_for_a_bare_backbone(setup: dict[str, Path], tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    save_backbone(build_backbone("small_cnn", widths=(8, 16)), bare)  # no preprocessing recorded, no config
    args = ["transfer", "--suite", str(setup["suite"]), "--runs", str(bare), "--no-progress", "--no-cache"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2  # needs --size
    assert main([*args, "--out", str(tmp_path / "b"), "--size", "16", "--std", *["0.3"] * 3]) == 0
    (run,) = json.loads((tmp_path / "b" / "results.json").read_text())["runs"]
    assert run["preprocessing"]["size"] == 16 and run["preprocessing"]["std"] == [0.3] * 3


@pytest.mark.parametrize(
    ("suite", "expect"),
    [
        ("datasets: [{name: x, data: nowhere/x, protocols: [linear]}]", "does not exist"),
        ("datasets: [{data: data/colours, protocols: [lineer]}]", "unknown protocol 'lineer'"),
        ("datasets: [{data: data/colours, protocols: {knn: {kk: 3}}}]", "unknown knn setting(s) kk"),
        ("datasets: []", "non-empty list"),
        ("dataset: [{data: data/colours}]", "unknown key(s) dataset"),
    ],
)
def test_bad_suite_exit_2(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], suite: str, expect: str
) -> None:
    p = setup["suite"].parent / "bad.yaml"
    p.write_text(suite)
    rc = main(["transfer", "--suite", str(p), "--runs", str(setup["run1"]), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expect in err.splitlines()[0]
    assert not (tmp_path / "o" / "results.json").exists()
    if "does not exist" in expect:
        assert "Expected layout" in err


def test_missing_run_fails_before_work(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [str(setup["run1"]), str(tmp_path / "gone")]
    rc = main(["transfer", "--suite", str(setup["suite"]), "--runs", *runs, "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backbone not found" in err[0]
    assert not (tmp_path / "o").exists()


def test_fewshot_pools_follow_the_paper(setup: dict[str, Path]) -> None:
    from augself.eval.eval_data import resolve_data

    assert resolve_data("fc100").fewshot_splits() == ["test"]  # novel classes only (reference §6.2)
    assert resolve_data("cub200").fewshot_splits() == ["all"]  # train ∪ test
    assert resolve_data(str(setup["suite"].parent / "data" / "colours")).fewshot_splits() == ["train", "test"]
