"""Writers for evaluation outputs: JSON records, the transfer Markdown table and PNG bar chart, the awareness
report's Markdown tables and PNG panels.

A *headline* is one scalar per (protocol, metric) taken from an evaluation record (the dict written by
``augself eval ...``): linear -> its selection metric (top-1 or mean per-class accuracy), kNN -> top-1,
few-shot -> one entry per shot count (mean with its 95 % confidence interval).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "awareness_markdown",
    "bar_chart",
    "check_replaceable",
    "headlines",
    "learned_markdown",
    "markdown_table",
    "plot_awareness",
    "plot_learned",
    "strict_json",
    "summary_line",
    "write_json",
]


def _finite(v: Any) -> Any:
    """JSON has no NaN/inf: map them to None (recursively). ``null`` in our JSON files therefore means
    "undefined", e.g. the R² of a constant target or a normalised invariance whose denominator vanishes."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def strict_json(obj: Any, **kw: Any) -> str:
    """``obj`` as strict JSON text (RFC 8259: NaN / inf become ``null``, never the bare ``NaN`` that
    ``json.dumps`` writes by default and strict parsers reject)."""
    return json.dumps(_finite(obj), allow_nan=False, default=str, **kw)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Atomically write ``obj`` as indented strict JSON (NaN / inf -> null) to ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = strict_json(obj, indent=2)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.write("\n")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return p


def check_replaceable(path: str | os.PathLike[str], evaluation: dict[str, Any], option: str = "--out") -> None:
    """Refuse (``ValueError``) to replace an existing result file ``path`` unless it holds the same
    ``evaluation`` (its ``"evaluation"`` entry: protocol, backbone paths, data identity), i.e. a re-run.

    So a result is never silently overwritten by another evaluation's (another dataset that happens to have the
    same name, another protocol or backbone, a file that is not an augself result)."""
    p = Path(path)
    if not p.exists():
        return
    try:
        old = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        old = None
    held = old.get("evaluation") if isinstance(old, dict) else None
    if held == json.loads(strict_json(evaluation)):
        return
    if isinstance(held, dict):
        backbones = ", ".join(map(str, held.get("backbones") or []))
        what = f"the {held.get('protocol')} result of {backbones} on {held.get('data')}"
    else:
        what = "something that is not an augself result of this evaluation"
    raise ValueError(f"{p} already holds {what}; not overwriting it: delete it or choose another {option}")


def headlines(record: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """``[(label, value, ci95 or None), ...]`` of an evaluation record (see the module docstring)."""
    proto = record["protocol"]
    m = record["metrics"]
    if proto == "linear":
        key = m.get("metric", "top1")
        name = "linear-sgd" if record.get("settings", {}).get("sgd") else "linear"
        return [(f"{name} {key}", float(m[key]), None)]
    if proto == "knn":
        s = record.get("settings", {})
        return [(f"knn top1 (k={s.get('k')}, T={s.get('t')})", float(m["top1"]), None)]
    if proto == "fewshot":
        out = []
        for key, v in m.items():
            if isinstance(v, dict) and "mean" in v:
                ways, shots = key.split("way")
                out.append((f"{ways}-way {shots.replace('shot', '')}-shot", float(v["mean"]), float(v["ci95"])))
        return out
    raise ValueError(f"no headline metrics for protocol {proto!r}")


def summary_line(record: dict[str, Any]) -> str:
    """One human-readable line: protocol, dataset and the headline numbers."""
    parts = []
    for label, v, ci in headlines(record):
        parts.append(f"{label} {v:.2f}" + (f" ± {ci:.2f}" if ci is not None else ""))
    extra = ""
    if record["protocol"] == "linear" and "best_wd" in record["metrics"]:
        m = record["metrics"]
        other = "class-avg" if m.get("metric", "top1") == "top1" else "top1"
        extra = f" ({other} {m[other]:.2f}, best wd {m['best_wd']:.3g})"
    skipped = (record.get("skipped_corrupt") or {}).get("count", 0)
    if skipped:
        extra += f" [skipped {skipped} corrupt image(s)]"
    return f"{record['protocol']} on {record['dataset']}: " + ", ".join(parts) + extra


def _fmt(v: float | None, ci: float | None = None, digits: int = 2) -> str:
    """``v`` with ``digits`` decimals (and ``± ci``); ``n/a`` for undefined values (None, NaN, inf)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None and math.isfinite(ci) else "")


def markdown_table(rows: Sequence[dict[str, Any]], runs: Sequence[str]) -> str:
    """Rows = (dataset, protocol/metric), columns = runs, then ``Δ <run>`` = run minus the first run.

    ``rows``: ``{"dataset", "metric", "values": [float | None per run], "ci": [float | None per run]}``.
    """
    head = ["dataset", "protocol / metric", *runs, *(f"Δ {r}" for r in runs[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for row in rows:
        vals = row["values"]
        cis = row.get("ci") or [None] * len(vals)
        cells = [str(row["dataset"]), str(row["metric"])]
        cells += [_fmt(v, c) for v, c in zip(vals, cis, strict=True)]
        base = vals[0]
        for v in vals[1:]:
            ok = v is not None and base is not None and math.isfinite(v) and math.isfinite(base)
            cells.append(f"{v - base:+.2f}" if ok else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(
    rows: Sequence[dict[str, Any]], runs: Sequence[str], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Grouped bar chart (one group per row, one bar per run, 95 % CI error bars where known) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    n_rows, n_runs = len(rows), max(1, len(runs))
    width = 0.8 / n_runs
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * n_rows * max(1.0, n_runs / 2) + 1.5), 4.2))
    x = np.arange(n_rows)
    for j, run in enumerate(runs):
        vals = [r["values"][j] for r in rows]
        cis = [(r.get("ci") or [None] * n_runs)[j] for r in rows]
        h = [v if v is not None and math.isfinite(v) else 0.0 for v in vals]
        err = [c if c is not None and math.isfinite(c) else 0.0 for c in cis]
        bars = ax.bar(
            x + (j - (n_runs - 1) / 2) * width, h, width, yerr=err if any(err) else None, capsize=2, label=run
        )
        for b, v in zip(bars, vals, strict=True):
            if v is not None and math.isfinite(v):
                ax.annotate(
                    f"{v:.1f}",
                    (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 1),
                    textcoords="offset points",
                )
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['dataset']}\n{r['metric']}" for r in rows], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    top = max([v for r in rows for v in r["values"] if v is not None and math.isfinite(v)] or [100.0])
    ax.set_ylim(0, min(105.0, top * 1.12 + 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p


def awareness_markdown(result: Mapping[str, Any]) -> str:
    """Markdown tables (invariance, predictability) with one column per run."""
    runs = result["runs"]
    names = [r["name"] for r in runs]
    head = "| augmentation | setting | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names) + "\n"
    lines = [
        f"# Awareness report: {result['dataset']} ({result['split']}, {result['n_images']} images, "
        f"seed {result['seed']})\n",
        "## Invariance\n",
        "Mean cosine similarity of f(x) and f(t(x)) / of shuffled pairs f(x_i), f(t(x_j)); in brackets the "
        "normalised invariance (pos - shuffled) / (1 - shuffled): 1 = invariant, 0 = as far as another image.\n",
        head.rstrip("\n"),
    ]
    first = runs[0]["report"]["invariance"]
    for aug, rows in first.items():
        for i, row in enumerate(rows):
            cells = []
            for r in runs:
                rr = r["report"]["invariance"].get(aug, [])
                if i < len(rr):
                    x = rr[i]
                    pos, neg, norm = (_fmt(x[k], digits=3) for k in ("positive", "shuffled", "normalised"))
                    cells.append(f"{pos} / {neg} ({norm})")
                else:
                    cells.append("n/a")
            lines.append(f"| {aug} | {row['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Predictability\n",
        "Probe on [f(v1), f(v2)] predicting the AugSelf targets on held-out images: R^2 for regression targets "
        "(0 = chance, 1 = perfect), accuracy % for classes (chance in brackets).\n",
        "| target | metric | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for aug, e in runs[0]["report"]["predictability"].items():
        cells = []
        for r in runs:
            x = r["report"]["predictability"].get(aug)
            if x is None:
                cells.append("n/a")
            elif x["metric"] == "accuracy":
                cells.append(f"{_fmt(x['score'], digits=1)} ({_fmt(x['chance'], digits=1)})")
            else:
                dims = ", ".join(f"{k.removeprefix('d_')} {_fmt(v, digits=3)}" for k, v in x["per_dim"].items())
                cells.append(f"{_fmt(x['score'], digits=3)}" + (f" ({dims})" if len(x["per_dim"]) > 1 else ""))
        metric = "accuracy %" if e["metric"] == "accuracy" else "R^2"
        lines.append(f"| {aug} ({e['setting']}) | {metric} | " + " | ".join(cells) + " |")
    lines += ["", "Backbones:", ""]
    for r in runs:
        p = r["preprocessing"]
        lines.append(
            f"- **{r['name']}**: `{r['backbone']}` (size {p['size']}, mean {p['mean']}, std {p['std']}, "
            f"preprocessing from {p['source']})"
        )
    text = "\n".join(lines) + "\n"
    learned = learned_markdown(result)
    return text + ("\n" + learned if learned else "")


def plot_awareness(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Two panels (normalised invariance per augmentation/strength; predictability per target), runs side by
    side. Uses the Agg canvas directly (no global matplotlib backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = result["runs"]
    first = runs[0]["report"]
    inv_keys = [(a, i, row["label"]) for a, rows in first["invariance"].items() for i, row in enumerate(rows)]
    pred_keys = list(first["predictability"])
    fig = Figure(figsize=(max(8.0, 0.55 * (len(inv_keys) + len(pred_keys)) * max(1, len(runs)) / 1.5 + 4), 4.2))
    FigureCanvasAgg(fig)
    panels = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)] if pred_keys else [fig.add_subplot(1, 1, 1)]
    width = 0.8 / max(1, len(runs))
    ax = panels[0]
    for j, r in enumerate(runs):
        inv = r["report"]["invariance"]
        vals = [inv[a][i]["normalised"] if a in inv and i < len(inv[a]) else float("nan") for a, i, _ in inv_keys]
        ax.bar([k + (j - (len(runs) - 1) / 2) * width for k in range(len(vals))], vals, width, label=r["name"])
    ax.set_xticks(range(len(inv_keys)), [f"{a}\n{lab}" for a, _, lab in inv_keys], fontsize=7)
    ax.set_ylabel("normalised invariance")
    ax.set_title("invariance: (cos pos - cos shuffled) / (1 - cos shuffled)", fontsize=9)
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)
    if pred_keys:
        ax = panels[1]
        for j, r in enumerate(runs):
            pr = r["report"]["predictability"]
            vals = []
            for a in pred_keys:
                e = pr.get(a)
                if e is None:
                    vals.append(float("nan"))
                elif e["metric"] == "accuracy":  # rescale to [0, 1] above chance, comparable with R^2
                    c = e["chance"]
                    vals.append((e["score"] - c) / (100 - c) if c < 100 else float("nan"))
                else:
                    vals.append(e["score"])
            ax.bar([k + (j - (len(runs) - 1) / 2) * width for k in range(len(vals))], vals, width, label=r["name"])
        ax.set_xticks(range(len(pred_keys)), pred_keys, fontsize=8)
        ax.set_ylabel("R^2  /  (acc - chance) / (100 - chance)")
        ax.set_title("predictability of the AugSelf targets", fontsize=9)
        ax.axhline(0, color="k", lw=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _learned_runs(result: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r["name"], r["learned"]) for r in result.get("runs", []) if r.get("learned")]


def learned_markdown(result: Mapping[str, Any]) -> str:
    """The "Learned augmentation ranges" section (runs with a ``learned.pt``; empty string when none has one): per
    class of the evaluation set, mean ± std over its images of each learned per-input quantity."""
    runs = _learned_runs(result)
    if not runs:
        return ""
    lines = [
        "## Learned augmentation ranges\n",
        "Per class of the evaluation images: mean ± std over its images of each per-input value of the run's learned "
        "augmentation module (`learned.pt`; InstaAug, Miao et al., ICML 2023): rotation theta ~ U[-lo, hi] in "
        "degrees, crop entropy (nats) and expected crop side (fraction of the image side) of the categorical crop "
        "distribution, colour ranges delta ~ U[-lo, hi] (factor 1 + delta; hue: a shift by delta).\n",
    ]
    for name, e in runs:
        keys = e["quantities"]
        fams = ", ".join(e.get("families") or []) or "?"
        lines += [
            f"### {name} (`{e.get('file')}`: {fams}; {e['n_images']} images at {e['image_size']} px)\n",
            "| class | n | " + " | ".join(e["labels"][k] for k in keys) + " |",
            "|---|---:|" + "---:|" * len(keys),
        ]
        for g in [*e["groups"], e["all"]]:
            cells = [_fmt(g["stats"][k]["mean"], g["stats"][k]["std"]) for k in keys]
            label = f"**{g['name']}**" if g["label"] is None else str(g["name"])
            lines.append(f"| {label} | {g['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


MAX_HIST_GROUPS = 6
"""Classes drawn in the crop-side histogram; with more, the two whose mean expected side is lowest / highest."""


def _hist_groups(e: Mapping[str, Any]) -> list[str]:
    groups = e["groups"]
    if len(groups) <= MAX_HIST_GROUPS:
        return [g["name"] for g in groups] or ["all"]
    ranked = sorted(groups, key=lambda g: g["stats"]["crop_expected_side"]["mean"])
    return [ranked[0]["name"], ranked[-1]["name"]]


def plot_learned(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """One row of panels per run with a ``learned.pt``: the learned rotation range per class (bar from -lo to +hi
    degrees, class means; whiskers: ± std of each end), the distribution of the expected crop side per class
    (histogram, up to :data:`MAX_HIST_GROUPS` classes), the colour ranges per class. None when no run has one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = _learned_runs(result)
    if not runs:
        return None
    panels = []
    for name, e in runs:
        keys = e["quantities"]
        row = []
        if "angle_lo_deg" in keys:
            row.append("angle")
        if "crop_expected_side" in keys and e.get("crop_side_hist"):
            row.append("crop")
        if any(k.startswith("color_") for k in keys):
            row.append("color")
        panels.append((name, e, row))
    cols = max(len(r) for _, _, r in panels) or 1
    fig = Figure(figsize=(4.6 * cols, 3.4 * len(panels)))
    FigureCanvasAgg(fig)
    for i, (name, e, row) in enumerate(panels):
        groups = e["groups"] or [e["all"]]
        names = [str(g["name"]) for g in groups]
        for j, kind in enumerate(row):
            ax = fig.add_subplot(len(panels), cols, i * cols + j + 1)
            if kind == "angle":
                lo = [g["stats"]["angle_lo_deg"] for g in groups]
                hi = [g["stats"]["angle_hi_deg"] for g in groups]
                y = list(range(len(groups)))
                left = [-x["mean"] for x in lo]
                width = [h["mean"] + x["mean"] for h, x in zip(hi, lo, strict=True)]
                ax.barh(y, width, left=left, color="tab:blue", alpha=0.7)
                ax.errorbar(left, y, xerr=[_nan0(x["std"]) for x in lo], fmt="none", ecolor="k", capsize=2, lw=0.8)
                ends = [a + b for a, b in zip(left, width, strict=True)]
                ax.errorbar(ends, y, xerr=[_nan0(h["std"]) for h in hi], fmt="none", ecolor="k", capsize=2, lw=0.8)
                ax.set_yticks(y, names, fontsize=7)
                ax.axvline(0, color="k", lw=0.6)
                ax.set_xlabel("learned rotation range (deg): -lo .. +hi", fontsize=8)
            elif kind == "crop":
                h = e["crop_side_hist"]
                edges = h["edges"]
                centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
                for g in _hist_groups(e):
                    counts = h["counts"][g]
                    total = sum(counts) or 1
                    ax.step(centres, [c / total for c in counts], where="mid", label=g, lw=1.2)
                ax.set_xlim(0, 1)
                ax.set_xlabel("expected crop side (fraction of the image side)", fontsize=8)
                ax.set_ylabel("fraction of images", fontsize=8)
                ax.legend(fontsize=6)
            else:
                ck = [k for k in e["quantities"] if k.startswith("color_") and k.endswith("_lo")]
                width = 0.8 / max(1, len(ck))
                for m, k in enumerate(ck):
                    base = k.removesuffix("_lo")
                    lo_m = [g["stats"][k]["mean"] for g in groups]
                    hi_m = [g["stats"][base + "_hi"]["mean"] for g in groups]
                    x = [t + (m - (len(ck) - 1) / 2) * width for t in range(len(groups))]
                    label = base.removeprefix("color_")
                    ax.bar(
                        x,
                        [a + b for a, b in zip(lo_m, hi_m, strict=True)],
                        width,
                        bottom=[-a for a in lo_m],
                        label=label,
                    )
                ax.set_xticks(range(len(groups)), names, fontsize=7, rotation=30)
                ax.axhline(0, color="k", lw=0.6)
                ax.set_ylabel("learned colour range: -lo .. +hi", fontsize=8)
                ax.legend(fontsize=6)
            ax.set_title(f"{name}: {kind}", fontsize=9)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    return p


def _nan0(v: float | None) -> float:
    return 0.0 if v is None or not math.isfinite(v) else float(v)
