"""`augself demo --quick` runs end to end and writes its outputs; bad options fail clearly; the default arms, the
reading printed under the table and the chart's error bars follow the measured numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augself.cli import build_parser, main
from augself.demo import TASKS, chart, hue_jitter, markdown_table, reading


def test_quick_demo_writes_results_report_chart_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--arms", "random,simclr,augself", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| shape |" in printed and "Reading (1 seed" in printed and "SimCLR + AugSelf vs SimCLR: color" in printed
    assert "SimCLR + AugSelf: pretraining" in printed and "linear probes" in printed  # per-arm times
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
    assert "|\n\nReading (1 seed" in report and "\n* SimCLR vs random init: shape" in report  # blank line after table
    assert set(res["seconds"]) == {"random", "simclr", "augself"} and res["seconds"]["simclr"][0]["pretrain"] > 0
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


def test_default_arms_include_the_paper_and_the_circular_hue_target() -> None:
    args = build_parser().parse_args(["demo"])
    assert args.arms.split(",") == ["random", "simclr", "augself", "augself_hue"]


def _results(top1: dict[str, dict[str, list[float]]]) -> dict:
    """A results dict as ``run_demo`` writes it, from per-seed accuracies per arm and task."""
    import statistics

    names = {"random": "random init", "simclr": "SimCLR", "augself": "SimCLR + AugSelf"}
    names["augself_hue"] = "SimCLR + AugSelf + circular hue"
    return {
        "arms": {a: names[a] for a in top1},
        "top1": {
            a: {
                t: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "per_seed": v}
                for t, v in tasks.items()
            }
            for a, tasks in top1.items()
        },
    }


def _arm(shape: list[float], color: list[float], position: list[float]) -> dict[str, list[float]]:
    return {
        "shape": shape,
        "color": color,
        "position": position,
        "size": [48.0] * len(shape),
        "orientation": [30.0] * len(shape),
    }


ONE_SEED = _results(
    {
        "random": _arm([21.0], [85.0], [33.0]),
        "simclr": _arm([37.0], [62.0], [49.0]),
        "augself": _arm([38.5], [60.5], [51.5]),
        "augself_hue": _arm([34.8], [86.0], [49.3]),
    }
)


def test_reading_one_seed_names_the_best_arm_per_factor_and_the_shape_cost() -> None:
    lines = reading(ONE_SEED, hue=0.5)
    assert lines[0].startswith("Reading (1 seed")
    assert lines[1] == (
        "  SimCLR vs random init: shape +16.0, color -23.0, position +16.0, size +0.0, orientation +0.0 "
        "(below the random-init floor on color)"
    )
    assert lines[2] == "  SimCLR + AugSelf vs SimCLR: color -1.5, position +2.5 (best), shape +1.5"
    assert lines[3] == "  SimCLR + AugSelf + circular hue vs SimCLR: color +24.0 (best), position +0.3, shape -2.2"
    assert "keeps 25.5 colour points more" in lines[4] and "±0.5" in lines[4] and len(lines) == 5


def test_reading_follows_the_numbers() -> None:
    # the paper's target wins on colour here, and no arm beats SimCLR on position: no "(best)" there, no hue line
    res = _results(
        {
            "simclr": _arm([37.0], [62.0], [49.0]),
            "augself": _arm([37.0], [70.0], [48.0]),
            "augself_hue": _arm([37.0], [65.0], [47.0]),
        }
    )
    lines = reading(res, hue=0.5)
    assert lines[1] == "  SimCLR + AugSelf vs SimCLR: color +8.0 (best), position -1.0, shape +0.0"
    assert lines[2] == "  SimCLR + AugSelf + circular hue vs SimCLR: color +3.0, position -2.0, shape +0.0"
    assert len(lines) == 3  # no random arm: no floor line; paper target ahead: no wrap-around line
    # at +-0.25 the paper's hue target does not wrap: no explanation line even when the circular target wins
    assert len(reading(ONE_SEED, hue=0.25)) == 4
    assert reading(_results({"random": _arm([1.0], [2.0], [3.0])})) == []  # nothing to compare with


def test_reading_with_seeds_counts_the_paired_signs() -> None:
    res = _results(
        {
            "simclr": _arm([37.0, 35.0, 36.0], [62.0, 60.0, 64.0], [49.0, 50.0, 48.0]),
            "augself_hue": _arm([35.0, 36.0, 33.0], [85.0, 84.0, 86.0], [50.0, 49.0, 50.0]),
        }
    )
    lines = reading(res)
    assert lines[0].startswith("Reading (mean over 3 seeds")
    assert lines[1] == (
        "  SimCLR + AugSelf + circular hue vs SimCLR: color +23.0 (3/3 seeds up) (best), "
        "position +0.7 (2/3 seeds up) (best), shape -1.3 (2/3 seeds down)"
    )


def test_hue_jitter_is_the_last_override() -> None:
    assert hue_jitter([]) == 0.5  # the demo's base setting
    assert hue_jitter(["augment.color_hue=0.1", "trainer.epochs=2"]) == 0.1
    assert hue_jitter(["augment.hue=0.2"]) == 0.2  # the old spelling (an alias) still counts


def test_one_seed_chart_has_no_error_bars_and_says_so() -> None:
    from matplotlib.container import BarContainer

    ax = chart(ONE_SEED).axes[0]
    assert "1 seed" in ax.get_title()
    assert len(ax.containers) == 4 and all(isinstance(c, BarContainer) and c.errorbar is None for c in ax.containers)
    three = _results({"simclr": _arm([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [3.0, 3.0, 3.0])})
    ax = chart(three).axes[0]
    assert "mean ± std over 3 seeds" in ax.get_title()
    bars = [c for c in ax.containers if isinstance(c, BarContainer) and c.errorbar is not None]
    assert len(bars) == 1
    segments = bars[0].errorbar.lines[2][0].get_segments()  # one vertical line per task: mean -/+ std
    assert [s[1][1] - s[0][1] for s in segments] == pytest.approx([2.0, 2 * 1.5275252, 0.0, 0.0, 0.0], rel=1e-6)


def test_table_keeps_its_columns() -> None:
    head = markdown_table(ONE_SEED).splitlines()[0]
    assert head == (
        "| task | random init | SimCLR | SimCLR + AugSelf | SimCLR + AugSelf + circular hue | "
        "Δ SimCLR + AugSelf − SimCLR | Δ SimCLR + AugSelf + circular hue − SimCLR |"
    )
