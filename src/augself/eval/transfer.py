"""The multi-dataset transfer suite: :func:`run_transfer` runs a suite (YAML) over several runs and writes
``results.json``, ``results.md`` (rows = dataset x protocol/metric, columns = runs, plus the difference to the
first run) and ``results.png``; every finished evaluation is saved under ``records/`` and reused on a re-run.

Suite format (relative paths resolve against the suite file's folder)::

    defaults:                      # optional per-protocol settings for every dataset
      fewshot: {shots: [5], episodes: 2000}
    datasets:
      - name: dtd10-64             # label in the table (default: the folder name)
        data: ${oc.env:AUGSELF_DATA,../../../shared/data}/dtd10-64   # a dataset name or an image-folder path
        root: null                 # root of a named dataset (optional)
        protocols: [linear, fewshot]          # or {linear: {wd_grid_size: 45}, fewshot: {shots: [1, 5]}}
        skip_corrupt: false        # per dataset, or once at the top level for all (``--skip-corrupt``: all)
        interpolation: bicubic     # resize filter, per dataset or once at the top level (``--interpolation``
                                   # overrides both): bicubic (default, the reference's evaluation) or bilinear

``data`` and ``root`` may name an environment variable as OmegaConf does in the pretraining configs:
``${oc.env:VAR}`` or ``${oc.env:VAR,default}`` (the default is used when ``VAR`` is unset or empty; a value from
the environment resolves against the working directory, a default against the suite file's folder), so a suite
need not depend on where the repository sits. A folder read through such a variable that does not exist gives one
line naming the variable, what it was set to and the expected layout.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from augself.data.errors import DatasetError
from augself.data.registry import build_dataset
from augself.eval.backbone_loading import (
    EVAL_INTERPOLATION,
    backbone_file,
    check_interpolation,
    default_label,
    load_for_eval,
)
from augself.eval.eval_data import EvalData, FeatureSource, resolve_data
from augself.eval.protocols import PROTOCOLS, protocol_settings, run_protocol
from augself.eval.report import bar_chart, headlines, markdown_table, strict_json, summary_line, write_json

__all__ = ["check_named_datasets", "load_suite", "run_transfer"]

SUITE_KEYS = {"name", "defaults", "datasets", "size", "batch_size", "skip_corrupt", "interpolation"}
ENTRY_KEYS = {"name", "data", "root", "protocols", "seed", "size", "skip_corrupt", "interpolation"}


def _interpolation(value: Any, where: str) -> str | None:
    """A suite's ``interpolation`` (``None``: not given), checked now so that a typo fails before any work."""
    if value is None:
        return None
    try:
        return check_interpolation(value)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: 'skip_corrupt' must be true or false, got {value!r}")
    return value


def _protocol_map(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """``[linear, {fewshot: {...}}]`` or ``{linear: null, fewshot: {...}}`` -> ``{protocol: settings}``."""
    items: list[tuple[Any, Any]] = []
    if isinstance(value, str):
        items = [(value, None)]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                items.append((v, None))
            elif isinstance(v, Mapping) and len(v) == 1:
                items.extend(v.items())
            else:
                raise ValueError(f"{where}: protocol entries are names or {{name: settings}}, got {v!r}")
    else:
        raise ValueError(f"{where}: 'protocols' must be a list or a mapping, got {value!r}")
    out: dict[str, dict[str, Any]] = {}
    for k, v in items:
        if k not in PROTOCOLS:
            raise ValueError(f"{where}: unknown protocol {k!r}; valid: {', '.join(PROTOCOLS)}")
        if v is not None and not isinstance(v, Mapping):
            raise ValueError(f"{where}: settings of {k} must be a mapping, got {v!r}")
        out[str(k)] = dict(v or {})
    if not out:
        raise ValueError(f"{where}: no protocols listed")
    return out


_ENV_REF = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")


@dataclasses.dataclass(frozen=True)
class _EnvRoot:
    """Where an ``${oc.env:VAR,default}`` reference in a suite led: the variable, its value (``None``: unset, so
    ``default`` was used) and the folder it names, resolved against the suite file's folder."""

    var: str
    value: str | None
    default: str | None
    folder: Path

    def describe(self) -> str:
        if self.value is not None:
            return f"${self.var}={self.value!r}"
        return f"${self.var} is not set, so the suite's default {self.default!r} (relative to the suite file) was used"


def _expand_env(text: str, base: Path, where: str) -> tuple[str, _EnvRoot | None]:
    """Replace ``${oc.env:VAR}`` / ``${oc.env:VAR,default}`` in ``text`` (OmegaConf's syntax); also return the
    first reference's folder for error messages. An unset ``VAR`` without a default is a one-line error."""
    first: list[_EnvRoot] = []

    def sub(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        value = os.environ.get(var) or None
        if value is None and default is None:
            raise ValueError(f"{where}: {m.group(0)} needs the environment variable {var}, which is not set")
        # a value from the environment is read like any path the user types (against the working directory),
        # a default written in the suite against the suite file's folder
        used = str(Path(value).expanduser().resolve()) if value is not None else str(default).strip()
        if not first:
            folder = (base / Path(used).expanduser()).resolve()
            first.append(_EnvRoot(var, value, None if default is None else default.strip(), folder))
        return used

    out = _ENV_REF.sub(sub, text)
    return out, (first[0] if first else None)


def _missing_root_error(root: _EnvRoot, names: list[str]) -> DatasetError:
    """One line: the folder an environment variable names does not exist, with what it should hold."""
    sets = ", ".join(f"{n}/" for n in names)  # e.g. cifar10-small/, dtd10-64/
    return DatasetError(
        f"data folder {str(root.folder)!r} does not exist ({root.describe()}); set {root.var} to the folder that "
        f"holds {sets}, each laid out as <set>/{{train,test}}/<class>/<image> or <set>/<class>/<image>"
    )


def load_suite(suite: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and validate a suite (YAML file or dict) without reading any images.

    Returns ``{"name", "base", "datasets": [{"name", "data": EvalData, "protocols": {p: settings}, "size"}],
    ...}``; relative dataset paths resolve against the suite file's folder (the working directory for a
    dict). Every dataset folder must exist, so a typo fails before any evaluation runs; all missing ones are
    named in one :class:`DatasetError`.
    """
    spec = _parse_suite(suite)
    if spec["problems"]:
        raise _problems_error(spec["problems"])
    return spec


def _problems_error(problems: list[tuple[str, DatasetError]]) -> DatasetError:
    """One error for every dataset of a suite that cannot be read (the error itself when there is one)."""
    if len(problems) == 1:
        return problems[0][1]
    return DatasetError(
        f"{len(problems)} dataset(s) of the suite cannot be read (folders resolve against the suite file; named "
        "datasets are read from the entry's 'root', else $AUGSELF_DATA, else ./data):\n"
        + "\n".join(f"* {name}: {err}" for name, err in problems)
    )


def _parse_suite(suite: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """:func:`load_suite` without raising for missing data: those go to ``spec["problems"]`` as ``(name, error)``
    so that the pre-check can list them together with the named datasets that cannot be read."""
    if isinstance(suite, Mapping):
        raw, base, label = dict(suite), Path.cwd(), str(suite.get("name", "suite"))
    else:
        import yaml

        p = Path(suite).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"transfer suite not found: {str(p)!r} (a YAML file, see configs/transfer/)")
        try:
            raw = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"cannot parse transfer suite {p}: {e}") from e
        base, label = p.resolve().parent, p.stem
        if not isinstance(raw, dict):
            raise ValueError(f"transfer suite {p} must be a mapping with a 'datasets' list")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise ValueError(f"transfer suite: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(SUITE_KEYS))}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, Mapping) or set(defaults) - set(PROTOCOLS):
        raise ValueError(f"transfer suite: 'defaults' maps protocol names ({', '.join(PROTOCOLS)}) to settings")
    entries = raw.get("datasets")
    if not isinstance(entries, list) or not entries:
        raise ValueError("transfer suite: 'datasets' must be a non-empty list of {name, data, protocols}")
    datasets = []
    problems: list[tuple[str, DatasetError]] = []
    names: set[str] = set()
    missing_roots: dict[_EnvRoot, list[str]] = {}
    skip_all = _flag(raw.get("skip_corrupt", False), "transfer suite")
    interpolation = _interpolation(raw.get("interpolation"), "transfer suite")
    for i, e in enumerate(entries):
        where = f"transfer suite datasets[{i}]"
        if isinstance(e, str):
            e = {"data": e}
        if not isinstance(e, Mapping) or "data" not in e:
            raise ValueError(f"{where}: needs at least 'data' (a dataset name or folder path)")
        bad = sorted(set(e) - ENTRY_KEYS)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(ENTRY_KEYS))}")
        protos = _protocol_map(e.get("protocols", ["linear"]), where)
        for p_, s_ in protos.items():
            protos[p_] = {**dict(defaults.get(p_) or {}), **s_}
            protocol_settings(p_, protos[p_])  # validate names / values now
        spec_data, env_root = _expand_env(str(e["data"]), base, where)
        root = e.get("root")
        if isinstance(root, str):
            root, root_env = _expand_env(root, base, where)
            env_root = env_root or root_env
        if env_root is not None and not env_root.folder.is_dir():
            missing_roots.setdefault(env_root, []).append(str(e.get("name") or Path(spec_data).name))
            continue
        try:
            data = resolve_data(
                spec_data,
                root=root,
                base=base,
                name=e.get("name"),
                seed=int(e.get("seed", 0)),
                skip_corrupt=_flag(e.get("skip_corrupt", skip_all), where),
            )
        except DatasetError as err:
            problems.append((str(e.get("name") or e["data"]), err))
            continue
        if data.name in names:
            raise ValueError(f"{where}: duplicate dataset name {data.name!r} (set 'name')")
        names.add(data.name)
        datasets.append(
            {
                "name": data.name,
                "data": data,
                "protocols": protos,
                "size": e.get("size"),
                "interpolation": _interpolation(e.get("interpolation"), where),
            }
        )
    for env_root, missing in missing_roots.items():
        problems.append((f"${env_root.var}", _missing_root_error(env_root, missing)))
    return {
        "name": str(raw.get("name", label)),
        "base": str(base),
        "datasets": datasets,
        "size": raw.get("size"),
        "interpolation": interpolation,
        "batch_size": int(raw.get("batch_size", 256)),
        "problems": problems,
    }


def check_named_datasets(spec: Mapping[str, Any]) -> None:
    """Open every dataset of a parsed suite without decoding images: the test split of a *named* one (its index
    files and folders), the class folders of an image folder (``train/`` of a pre-split one). Raise one
    :class:`DatasetError` naming every dataset that cannot be read (and the missing folders :func:`load_suite`
    found), each with its expected layout, before any evaluation runs."""
    problems: list[tuple[str, DatasetError]] = list(spec.get("problems", []))
    for ds in spec["datasets"]:
        d: EvalData = ds["data"]
        size = int(ds["size"] or spec["size"] or 32)
        try:
            if d.kind == "named":
                build_dataset(d.spec, "test", size=size, root=d.root, seed=d.seed)
            elif d.kind == "folder":
                build_dataset(str(d.path), "train" if d.presplit else "all", size=size, seed=d.seed)
        except DatasetError as e:
            problems.append((d.name, e))
    if problems:
        raise _problems_error(problems)


def _unique_labels(labels: list[str]) -> list[str]:
    out: list[str] = []
    for lab in labels:
        cand, i = lab, 2
        while cand in out:
            cand, i = f"{lab}-{i}", i + 1
        out.append(cand)
    return out


def run_transfer(
    suite: str | os.PathLike[str] | Mapping[str, Any],
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    cache: str | os.PathLike[str] | bool | None = True,
    batch_size: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    resume: bool = True,
    log: Any = print,
    skip_corrupt: bool = False,
    interpolation: str | None = None,
) -> dict[str, Any]:
    """Run a transfer suite over ``runs`` (run directories or backbone files) and write ``out/results.json``,
    ``out/results.md`` and ``out/results.png``.

    Every finished evaluation is saved at once under ``out/records/``; with ``resume`` (default) a re-run
    into the same ``out`` reuses those made with the same backbone weights, data, protocol, settings and
    preprocessing, so an interrupted suite continues where it stopped.
    ``skip_corrupt=True`` leaves out (and counts) undecodable images in every dataset (else per the suite's
    ``skip_corrupt`` keys); the counts are in each record's ``skipped_corrupt``.

    ``cache=True`` keeps features under ``out/features`` (a path: there; ``False``/``None``: no disk cache).
    ``size`` overrides every backbone's evaluation resolution (else the suite's / the pretraining one), and
    ``mean``/``std`` its normalisation; a bare ``backbone.pt`` without recorded preprocessing needs ``size``.
    ``interpolation`` (the resize filter) overrides the suite's (per dataset, else top level; default bicubic).
    Returns the ``results.json`` content.
    """
    t_start = time.perf_counter()
    if not runs:
        raise ValueError("transfer: give at least one run (run directory or backbone.pt)")
    if interpolation is not None:
        interpolation = check_interpolation(interpolation)
    spec = _parse_suite(suite)
    files = [backbone_file(r) for r in runs]  # fail fast on a missing run
    check_named_datasets(spec)  # ... and on every missing dataset together, before hours of evaluation
    if skip_corrupt:
        for ds in spec["datasets"]:
            ds["data"] = dataclasses.replace(ds["data"], skip_corrupt=True)
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"transfer: {len(labels)} labels for {len(runs)} runs")
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = out_dir / "features" if cache is True else (cache or None)
    bs = int(batch_size or spec["batch_size"])
    records: list[dict[str, Any]] = []
    run_info: list[dict[str, Any]] = []
    run_labels = _unique_labels([default_label(f) for f in files] if labels is None else [str(x) for x in labels])
    for i, f in enumerate(files):
        run_interp = interpolation or spec["interpolation"] or EVAL_INTERPOLATION
        lb = load_for_eval(f, size=size, mean=mean, std=std, label=run_labels[i], interpolation=run_interp)
        run_info.append({**lb.info(), "preprocessing": lb.pre.to_dict()})
        for ds in spec["datasets"]:
            eff_size = size or ds["size"] or spec["size"]
            src = FeatureSource(
                lb,
                ds["data"],
                size=eff_size,
                device=device,
                cache=cache_dir,
                batch_size=bs,
                num_workers=num_workers,
                progress=progress,
                interpolation=interpolation or ds["interpolation"] or run_interp,
            )
            for proto, settings in ds["protocols"].items():
                rec, note = _evaluate_or_reuse(src, proto, settings, out_dir / "records", resume)
                rec["run"] = lb.label
                records.append(rec)
                if log:
                    log(f"[{lb.label}] {summary_line(rec)}{note}")
        del lb
    rows = _table_rows(records, run_labels, [d["name"] for d in spec["datasets"]])
    result = {
        "suite": {
            "name": spec["name"],
            "base": spec["base"],
            "interpolation": interpolation or spec["interpolation"] or EVAL_INTERPOLATION,
            "datasets": [
                {
                    "name": d["name"],
                    "data": d["data"].info(),
                    "protocols": d["protocols"],
                    "size": d["size"],
                    "interpolation": d["interpolation"],
                }
                for d in spec["datasets"]
            ],
        },
        "runs": run_info,
        "table": rows,
        "results": records,
        "time_s": round(time.perf_counter() - t_start, 2),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(result, out_dir / "results.json")
    md = [
        f"# Transfer: {spec['name']}",
        "",
        "Runs: " + ", ".join(f"`{r['label']}` ({r['path']})" for r in run_info),
        "",
        "Accuracy in %; few-shot as mean ± 95 % CI; Δ = run minus the first run.",
        "",
        markdown_table(rows, run_labels),
    ]
    (out_dir / "results.md").write_text("\n".join(md))
    bar_chart(rows, run_labels, out_dir / "results.png", title=f"transfer: {spec['name']}")
    return result


def _evaluate_or_reuse(
    src: FeatureSource, proto: str, settings: Mapping[str, Any], records: Path, resume: bool
) -> tuple[dict[str, Any], str]:
    """Run ``proto`` on ``src`` and save the record under ``records`` at once (a crash later loses nothing
    done so far), or, with ``resume``, reuse the record saved there for the same backbone weights, data,
    protocol, settings (defaults included) and preprocessing. Returns the record and a note for the log."""
    saved = records / _safe_name(f"{src.lb.hash[:16]}-{src.data.file_stem()}-{proto}.json")
    key = _json_normal(
        {
            "backbone_sha256": src.lb.hash,
            "data": src.data.info(),
            "protocol": proto,
            "settings": protocol_settings(proto, settings),
            "preprocessing": src.preprocessing(),
        }
    )
    rec = _load_saved(saved, key) if resume else None
    if rec is not None:
        return rec, f" (saved result reused: {saved.name})"
    rec = run_protocol(proto, src, settings)
    write_json({"key": key, "record": rec}, saved)
    return rec, ""


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _json_normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, paths -> strings), for key comparison."""
    return json.loads(strict_json(obj, sort_keys=True))


def _load_saved(path: Path, key: Any) -> dict[str, Any] | None:
    """The record saved at ``path`` by an earlier (possibly interrupted) run of the suite when it was made
    with the same backbone weights, data, protocol, settings and preprocessing; else ``None``."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: recompute (the write is atomic, so this is rare)
    if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("record"), dict):
        return None
    return saved["record"]


def _table_rows(records: list[dict[str, Any]], runs: list[str], order: list[str]) -> list[dict[str, Any]]:
    """Rows (dataset, protocol/metric) with one value (and CI) per run, in suite order."""
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        j = runs.index(rec["run"])
        for label, v, ci in headlines(rec):
            key = (rec["dataset"], label)
            row = keyed.setdefault(
                key,
                {
                    "dataset": rec["dataset"],
                    "protocol": rec["protocol"],
                    "metric": label,
                    "values": [None] * len(runs),
                    "ci": [None] * len(runs),
                },
            )
            row["values"][j], row["ci"][j] = v, ci
    return sorted(keyed.values(), key=lambda r: order.index(r["dataset"]))
