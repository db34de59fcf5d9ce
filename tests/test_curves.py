"""Training curves: metrics columns -> panels, ``augself plot`` (several runs, bad input), ``curves.png`` at the end
of a run and a plotting failure that leaves the run intact."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from PIL import Image

from augself.cli import main
from augself.train import curves
from augself.train.curves import ACCURACY, LEARNING_RATE, TOTAL_LOSS, collect_series, read_run, run_labels, write_curves
from helpers import TINY_RUN

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny runs and figures: one thread is faster on a busy host

# The columns ResumableCSVLogger writes for SimCLR + AugSelf(crop) with the online probe and the kNN monitor: the lr
# row and the step rows are separate lines (Lightning's layout), the epoch row holds loss_epoch and the kNN value.
HEADER = [
    "epoch",
    "lr-SGD/pg1",
    "lr-SGD/pg2",
    "monitor/knn_top1",
    "step",
    "train/augself/crop",
    "train/loss/method",
    "train/loss_epoch",
    "train/loss_step",
    "train/moco/z_std",
    "train/probe/acc",
]


def _rows(n_steps: int = 4, lr2_factor: float = 1.0) -> list[dict[str, str]]:
    rows = []
    for s in range(n_steps):
        lr = 0.1 * (n_steps - s) / n_steps
        rows.append({"step": str(s), "lr-SGD/pg1": str(lr), "lr-SGD/pg2": str(lr * lr2_factor)})
        rows.append(
            {
                "epoch": "0",
                "step": str(s),
                "train/augself/crop": str(0.5 - 0.1 * s),
                "train/loss/method": str(4.0 - s),
                "train/loss_step": str(4.5 - 1.1 * s),
                "train/moco/z_std": str(0.07),
                "train/probe/acc": str(0.25 * s),
            }
        )
    rows.append({"epoch": "0", "step": str(n_steps - 1), "train/loss_epoch": "3.0", "monitor/knn_top1": "41.5"})
    return [{k: r.get(k, "") for k in HEADER} for r in rows]


def _write_run(folder: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return folder


def _by_column(rows: list[dict[str, str]]) -> dict[str, curves.Series]:
    return {s.column: s for s in collect_series(rows)}


def test_columns_map_to_panels_terms_and_points() -> None:
    found = collect_series(_rows())
    got = {s.column: (s.panel, s.term) for s in found}
    assert got == {
        "train/loss_step": (TOTAL_LOSS, "per step"),
        "train/loss_epoch": (TOTAL_LOSS, "epoch mean"),
        "train/augself/crop": ("AugSelf crop loss", ""),
        "train/loss/method": ("method loss", ""),
        "lr-SGD/pg1": (LEARNING_RATE, ""),  # pg2 holds the same values: drawn once, and alone needs no term
        "monitor/knn_top1": (ACCURACY, "kNN top-1"),
        "train/probe/acc": (ACCURACY, "online probe"),
        "train/moco/z_std": ("moco/z_std", ""),
    }
    # panel order: total loss, the loss terms, lr, accuracy, the rest
    assert [s.panel for s in found][:2] == [TOTAL_LOSS, TOTAL_LOSS] and found[0].term == "per step"
    assert [s.panel for s in found][-1] == "moco/z_std"
    panels = [s.panel for s in found]
    assert panels.index(LEARNING_RATE) < panels.index(ACCURACY) and panels.index("method loss") < panels.index(
        LEARNING_RATE
    )
    by = {s.column: s for s in found}
    assert by["train/loss_step"].steps == (0, 1, 2, 3)
    assert by["train/loss_step"].values == pytest.approx((4.5, 3.4, 2.3, 1.2))
    assert by["train/loss_epoch"].steps == (3,) and by["train/loss_epoch"].values == (3.0,)
    assert by["lr-SGD/pg1"].values == pytest.approx((0.1, 0.075, 0.05, 0.025))
    # the probe logs a fraction, the kNN monitor a percentage: both drawn in %
    assert by["train/probe/acc"].values == pytest.approx((0.0, 25.0, 50.0, 75.0))
    assert by["monitor/knn_top1"].values == (41.5,)


def test_distinct_learning_rate_groups_are_kept_with_their_names() -> None:
    by = _by_column(_rows(lr2_factor=0.1))
    assert (by["lr-SGD/pg1"].term, by["lr-SGD/pg2"].term) == ("SGD/pg1", "SGD/pg2")
    assert by["lr-SGD/pg2"].values == pytest.approx((0.01, 0.0075, 0.005, 0.0025))


def test_cells_that_are_not_finite_numbers_are_left_out() -> None:
    rows = _rows(3)
    for r, bad in zip([r for r in rows if r["train/loss_step"]], ["nan", "abc", "inf"], strict=True):
        r["train/loss_step"] = bad
    rows.append({**{k: "" for k in HEADER}, "step": "9", "train/loss/method": "-inf", "train/augself/crop": "1e-3"})
    by = _by_column(rows)
    assert "train/loss_step" not in by  # every value unusable: no curve
    assert by["train/loss/method"].steps == (0, 1, 2)
    assert by["train/augself/crop"].steps == (0, 1, 2, 9) and by["train/augself/crop"].values[-1] == 1e-3


def test_run_labels_tell_runs_apart() -> None:
    assert run_labels([Path("runs/a"), Path("runs/b")]) == ["a", "b"]
    assert run_labels([Path("x/simclr/seed0"), Path("y/simclr/seed0"), Path("x/augself/seed0")]) == [
        "x/simclr/seed0",
        "y/simclr/seed0",
        "x/augself/seed0",
    ]


def test_plot_several_runs_writes_one_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write_run(tmp_path / "simclr", _rows(6))
    b = _write_run(tmp_path / "augself", _rows(4, lr2_factor=0.5))
    out = tmp_path / "both.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    with Image.open(out) as im:
        im.load()
        assert im.format == "PNG"
        # 6 panels (total, crop, method, lr, accuracy, z_std) -> 3 columns of 4.4 in at 100 dpi
        assert im.size[0] == 1320
    assert sorted(p.name for p in tmp_path.iterdir()) == ["augself", "both.png", "simclr"]  # no temporary file left


def test_plot_one_run_defaults_to_its_curves_png(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "r", _rows())
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a metrics.csv path is accepted too, and the format follows the suffix
    assert main(["plot", str(run / "metrics.csv"), "--out", str(tmp_path / "r.svg")]) == 0
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:1000]


def _csv_run(root: Path, data: bytes) -> Path:
    (root / "r").mkdir()
    (root / "r" / "metrics.csv").write_bytes(data)
    return root / "r"


@pytest.mark.parametrize(
    ("make", "msg"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "is not a run folder (no metrics.csv)"),
        (lambda d: _csv_run(d, b""), "holds no logged values"),
        (lambda d: _csv_run(d, b"epoch,step,train/loss_step\n"), "holds no logged values"),  # header only
        (lambda d: _csv_run(d, b"step,train/loss_step\nx,1.0\n3,\n"), "holds no logged values"),  # no step+number
        (lambda d: _csv_run(d, b"step,x\n1,\x00\n"), "holds no logged values"),
        (lambda d: _csv_run(d, b"step,x\n1," + b"9" * 200_000 + b"\n"), "not a readable metrics CSV"),  # csv.Error
        (lambda d: _csv_run(d, b"step,x\n1,\xff\xfe\n"), "not a readable metrics CSV"),
    ],
)
def test_plot_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, msg) -> None:  # type: ignore[no-untyped-def]
    run = make(tmp_path)
    out = tmp_path / "out.png"
    assert main(["plot", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("augself plot: error: ") and msg in err and err.count("\n") == 1
    assert not out.exists()


def test_plot_bad_output_is_one_line_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write_run(tmp_path / "r", _rows())
    for out, msg in (
        (tmp_path / "c.bogus", "cannot write a .bogus image"),
        (tmp_path / "no" / "c.png", "cannot write"),
    ):
        assert main(["plot", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"] and sorted(p.name for p in run.iterdir()) == [
        "metrics.csv"
    ]


def test_failed_write_keeps_the_old_image_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    run = _write_run(tmp_path / "r", _rows())
    out = write_curves([run], run / "curves.png")
    before = out.read_bytes()

    def broken(self, fname, **kw):  # type: ignore[no-untyped-def]
        Path(fname).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="No space left"):
        write_curves([run], out)
    assert out.read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["curves.png", "metrics.csv"]


TINY = [*TINY_RUN, "trainer.epochs=1", "trainer.log_every_n_steps=1", "augself.crop=1.0"]


def test_a_finished_run_draws_its_curves(tmp_path: Path) -> None:
    from augself.config import load_config
    from augself.train.run import run_pretrain

    out = run_pretrain(load_config(None, [*TINY, f"out={tmp_path / 'run'}"]))
    with Image.open(out / "curves.png") as im:
        im.load()
    got = {s.column for s in read_run(out)}  # what the figure drew: the run's real columns
    assert {"train/loss_step", "train/loss_epoch", "train/augself/crop", "train/loss/method"} <= got
    assert {"train/probe/acc", "train/probe/loss"} <= got and any(c.startswith("lr-") for c in got)


def test_a_plotting_failure_is_one_warning_and_the_run_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from augself.config import load_config
    from augself.train.run import run_pretrain

    def broken(*_a: object, **_k: object) -> Path:
        raise RuntimeError("no font\nsecond line")

    import augself.train.run as run_module

    monkeypatch.setattr(curves, "write_curves", broken)
    monkeypatch.setattr(run_module, "write_curves", broken, raising=False)  # imported at the top of run.py
    with caplog.at_level(logging.WARNING, logger="augself.train.run"):
        out = run_pretrain(load_config(None, [*TINY, f"out={tmp_path / 'run'}"]))
    assert (out / "backbone.pt").is_file() and not (out / "curves.png").exists()
    msgs = [r.getMessage() for r in caplog.records if "curves" in r.getMessage()]
    assert msgs == ["training curves not drawn (the run itself is complete): no font"]
