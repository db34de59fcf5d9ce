"""A CSV logger that keeps the rows of the interrupted run when a run is resumed.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts; on ``--resume`` that would lose
the history. This subclass keeps the rows that were on disk when the checkpoint was written (the first
``keep_rows`` rows, and only those of steps before the checkpoint's), rewrites the file atomically, then appends
as usual. :meth:`ResumableCSVLogger.save` also counts the rows written and fsyncs the file, so that a
checkpoint can record exactly which rows belong to it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from augself.train.metrics_csv import read_rows


def _atomic_write_rows(path: str, fieldnames: list[str], rows: list[dict[str, Any]]) -> None:
    """Write a CSV through a temporary file + fsync + ``os.replace`` (a kill leaves the old or the new file)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _KeepingWriter(ExperimentWriter):
    """Lightning's writer, minus the deletion of an existing ``metrics.csv`` (the logger handles it), and with
    an atomic rewrite when new columns appear (Lightning truncates the file in place: a kill then loses it)."""

    def _check_log_dir_exists(self) -> None:
        pass

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if None not in r]
        _atomic_write_rows(self.metrics_file_path, fieldnames, rows)


class ResumableCSVLogger(CSVLogger):
    """Writes ``<save_dir>/metrics.csv``; with ``keep_before_step`` keeps the earlier rows of that file.

    ``keep_rows`` (from the checkpoint) bounds the kept rows to those flushed before the checkpoint was written.
    """

    def __init__(self, save_dir: str | Path, keep_before_step: int | None = None, keep_rows: int | None = None) -> None:
        super().__init__(save_dir, name="", version="")
        self._resuming = keep_before_step is not None
        self._previous = (
            read_rows(Path(save_dir) / "metrics.csv", keep_rows, keep_before_step) if self._resuming else []
        )
        self.rows_written = 0
        """Data rows in ``metrics.csv`` after the last :meth:`save`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        os.makedirs(self.root_dir, exist_ok=True)
        exp = _KeepingWriter(log_dir=self.log_dir)
        keys = sorted({k for r in self._previous for k in r})
        if keys:
            _atomic_write_rows(exp.metrics_file_path, keys, self._previous)
        elif os.path.isfile(exp.metrics_file_path):  # a fresh run, or a resume before the first row
            os.remove(exp.metrics_file_path)
        exp.metrics_keys = keys
        self.rows_written = len(self._previous)
        self._previous = []
        self._experiment = exp
        return exp

    def save(self) -> None:
        exp = self.experiment
        metrics = getattr(exp, "metrics", None)
        pending = len(metrics) if isinstance(metrics, list) else 0
        super().save()
        self.rows_written += pending
        path = getattr(exp, "metrics_file_path", None)
        if pending and path and os.path.isfile(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
