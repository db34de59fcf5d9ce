"""Training curves: ``<run>/curves.png`` from a run's ``metrics.csv``, for one run or several side by side.

The CSV is the one :class:`augself.train.csv_log.ResumableCSVLogger` writes: a ``step`` and an ``epoch`` column,
and one column per logged scalar (:meth:`augself.train.module.PretrainModule.training_step`,
:class:`augself.train.monitors.KNNMonitor`, Lightning's ``LearningRateMonitor``). :func:`collect_series` maps the
columns to panels (a pure function, no plotting); :func:`write_curves` draws them with matplotlib's object API
(no ``pyplot``, so a caller's backend is left alone) and writes the image atomically.

Panels, in this order, each present only when its columns hold a number:

* ``loss (total)``: ``train/loss_step`` (per logged step) and ``train/loss_epoch`` (epoch mean, markers);
* one panel per loss term: ``train/loss/method``, ``train/augself/<target>``, ``train/essl/rot_loss``,
  ``train/probe/loss`` and the method's own terms (e.g. ``train/vicreg/inv``);
* ``learning rate``: every ``lr-<optimizer>[/pgN]`` column (parameter groups with identical values drawn once);
* ``accuracy (%)``: ``monitor/knn_top1`` (kNN monitor, already in %), ``train/probe/acc`` (online probe) and
  ``train/essl/rot_acc`` (E-SSL rotation), the last two logged as fractions and drawn in %;
* any other numeric column (e.g. ``train/moco/z_std``), one panel each.

Runs are told apart by colour (legend by run name); terms sharing a panel by line style.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from augself.train.metrics_csv import read_rows  # not csv_log: `augself plot` needs no Lightning

TOTAL_LOSS = "loss (total)"
LEARNING_RATE = "learning rate"
ACCURACY = "accuracy (%)"

_ACCURACY_COLUMNS = {
    "monitor/knn_top1": ("kNN top-1", 1.0),
    "train/probe/acc": ("online probe", 100.0),
    "train/essl/rot_acc": ("E-SSL rotation", 100.0),
}
"""Accuracy column -> (term label, factor to %): the kNN monitor logs % (monitors.py, ``* 100``), the online
probe and E-SSL log fractions (module.py ``probe/acc``, essl.py ``rot_acc``)."""

_LOSS_TITLES = {
    "train/loss/method": "method loss",
    "train/essl/rot_loss": "E-SSL rotation loss",
    "train/probe/loss": "online probe loss",
}
_SKIP = {"step", "epoch"}


class CurvesError(ValueError):
    """A folder without a usable ``metrics.csv`` (a user error: one line, exit status 2)."""


@dataclass(frozen=True)
class Series:
    """One curve: ``panel`` (its subplot title), ``term`` (its name inside a panel shared by several terms, else
    ``""``), the source ``column`` and the (step, value) points in file order."""

    panel: str
    term: str
    column: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


def panel_of(column: str) -> tuple[str, str, float] | None:
    """``(panel, term, scale)`` for a metrics column, or ``None`` for ``step`` / ``epoch``."""
    if column in _SKIP:
        return None
    if column == "train/loss_step":
        return TOTAL_LOSS, "per step", 1.0
    if column == "train/loss_epoch":
        return TOTAL_LOSS, "epoch mean", 1.0
    if column.startswith("lr-"):
        return LEARNING_RATE, column[3:], 1.0
    if column in _ACCURACY_COLUMNS:
        term, scale = _ACCURACY_COLUMNS[column]
        return ACCURACY, term, scale
    if column in _LOSS_TITLES:
        return _LOSS_TITLES[column], "", 1.0
    if column.startswith("train/augself/"):
        return f"AugSelf {column.removeprefix('train/augself/')} loss", "", 1.0
    return column.removeprefix("train/"), "", 1.0


def _number(cell: str | None) -> float | None:
    try:
        v = float(cell) if cell not in (None, "") else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def collect_series(rows: Sequence[dict[str, str]]) -> list[Series]:
    """The curves of one run's metrics rows, panel by panel in the module docstring's order.

    Cells that are empty, not numbers or not finite are left out; learning-rate parameter groups whose points
    equal an earlier group's are dropped (Lightning logs one column per group, usually all equal).
    """
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    found: list[Series] = []
    for col in columns:
        where = panel_of(col)
        if where is None:
            continue
        panel, term, scale = where
        steps, values = [], []
        for r in rows:
            v, s = _number(r.get(col)), _number(r.get("step"))
            if v is not None and s is not None:
                steps.append(int(s))
                values.append(v * scale)
        if values:
            found.append(Series(panel, term, col, tuple(steps), tuple(values)))
    lrs = [s for s in found if s.panel == LEARNING_RATE]
    for i, s in enumerate(lrs):
        if any((s.steps, s.values) == (t.steps, t.values) for t in lrs[:i]):
            found.remove(s)
    lrs = [s for s in found if s.panel == LEARNING_RATE]
    if len(lrs) == 1:  # one learning rate: the panel title says it all
        found[found.index(lrs[0])] = Series(LEARNING_RATE, "", lrs[0].column, lrs[0].steps, lrs[0].values)
    return sorted(found, key=lambda s: (_order(s.panel), s.term == "epoch mean"))


def _order(panel: str) -> int:
    if panel == TOTAL_LOSS:
        return 0
    if panel.endswith("loss"):
        return 1
    return {LEARNING_RATE: 2, ACCURACY: 3}.get(panel, 4)


def run_labels(runs: Sequence[Path]) -> list[str]:
    """Legend names: each run folder's name, with as many parent folders as it takes to tell them apart."""
    parts = [Path(os.path.abspath(r)).parts for r in runs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(r) for r in runs]  # the same folder twice


def read_run(run: Path) -> list[Series]:
    """The curves of one run folder (or of a ``metrics.csv`` path); :class:`CurvesError` when there are none."""
    path = run if run.name == "metrics.csv" and run.is_file() else run / "metrics.csv"
    if not path.is_file():
        why = "does not exist" if not run.exists() else "is not a run folder (no metrics.csv)"
        raise CurvesError(f"{run} {why}")
    try:
        rows = read_rows(path)
    except (csv.Error, UnicodeDecodeError) as e:
        raise CurvesError(f"{path} is not a readable metrics CSV: {e}") from None
    series = collect_series(rows)
    if not series:
        raise CurvesError(f"{path} holds no logged values yet (no rows with a step and a number)")
    return series


def write_curves(runs: Sequence[Path | str], out: Path | str, dpi: int = 100) -> Path:
    """Draw the curves of ``runs`` (overlaid, one colour per run) into ``out``, written atomically.

    The format follows ``out``'s suffix (``.png`` as written at the end of a run; ``.pdf`` / ``.svg`` work too).
    Raises :class:`CurvesError` for a folder without usable metrics or an unknown suffix, ``OSError`` when
    ``out`` cannot be written; nothing is created then.
    """
    from matplotlib.figure import Figure

    paths = [Path(r) for r in runs]
    if not paths:
        raise CurvesError("no run folder given")
    out = Path(out)
    fig = Figure()
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in fig.canvas.get_supported_filetypes():
        raise CurvesError(f"{out}: cannot write a {out.suffix or 'suffix-less'} image (use .png, .pdf or .svg)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: folder {out.parent} does not exist")
    per_run = [read_run(p) for p in paths]
    labels = run_labels(paths)
    panels: list[str] = []
    for s in (s for series in per_run for s in series):
        if s.panel not in panels:
            panels.append(s.panel)
    panels.sort(key=_order)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig.set_size_inches(4.4 * ncols, 2.9 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f"C{i % 10}" for i in range(len(paths))]
    styles = ["-", "--", ":", "-."]
    for ax, panel in zip(axes[: len(panels)], panels, strict=True):
        terms: list[str] = []
        for s in (s for series in per_run for s in series if s.panel == panel):
            if s.term not in terms:
                terms.append(s.term)
        for series, label, colour in zip(per_run, labels, colours, strict=True):
            for s in (s for s in series if s.panel == panel):
                k = terms.index(s.term)
                name = " · ".join(x for x in ((label if len(paths) > 1 else ""), s.term) if x) or label
                sparse = len(s.values) <= 20 or s.term in ("epoch mean", "kNN top-1")
                ax.plot(s.steps, s.values, styles[k % len(styles)], color=colour, label=name, lw=1.2,
                        marker="o" if sparse else None, ms=3)  # fmt: skip
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if any(terms) or len(paths) > 1:  # a named term (accuracy: which one) or several runs
            ax.legend(fontsize=6)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("training curves: " + ", ".join(labels), fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.5 / fig.get_figheight(), top=1 - 0.55 / fig.get_figheight(),
                        wspace=0.25, hspace=0.45 * 2.9 / 2.9)  # fmt: skip
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, out)
    except OSError as e:
        raise OSError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
