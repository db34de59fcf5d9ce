"""Reading a run's ``metrics.csv`` (plain ``csv``, no Lightning): shared by the resumable logger
(:mod:`augself.train.csv_log`) and ``augself plot`` (:mod:`augself.train.curves`), which thus starts without
importing Lightning (several seconds).
"""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path, keep_rows: int | None = None, before_step: int | None = None) -> list[dict[str, str]]:
    """Rows of a metrics CSV: at most the first ``keep_rows``, with an integer step below ``before_step``."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if keep_rows is not None:
        rows = rows[:keep_rows]
    out = []
    for r in rows:
        step = (r.get("step") or "").strip()
        if not step.isdigit() or None in r:  # partial or malformed line
            continue
        if before_step is None or int(step) < before_step:
            out.append(r)
    return out
