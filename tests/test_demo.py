"""`augself demo --quick` runs end to end and writes its outputs; bad options fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augself.cli import main
from augself.demo import TASKS


def test_quick_demo_writes_results_report_chart_and_preview(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--arms", "random,simclr,augself", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["top1"]) == {"random", "simclr", "augself"}
    for arm in res["top1"].values():
        assert set(arm) == set(TASKS)
        for task in TASKS:
            assert 0.0 <= arm[task]["mean"] <= 100.0 and len(arm[task]["per_seed"]) == 1
    # trained arms really trained: their runs exported a backbone
    assert (out / "runs" / "augself-seed0" / "backbone.pt").is_file()
    report = (out / "report.md").read_text()
    assert "augself demo --quick" in report and "| shape |" in report and "Δ SimCLR + AugSelf − SimCLR" in report
    for png in ("chart.png", "preview.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second call reuses the finished runs and gives the same numbers
    assert main(["demo", "--quick", "--arms", "simclr", "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["top1"]["simclr"] == res["top1"]["simclr"]


@pytest.mark.parametrize(("argv", "msg"), [(["--arms", "simclr,bogus"], "bogus"), (["--seeds", "0"], "--seeds")])
def test_demo_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], msg: str) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), *argv]) == 2
    assert msg in capsys.readouterr().err
