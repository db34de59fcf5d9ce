"""``augself eval {linear,knn,fewshot,awareness}`` and ``augself transfer`` (wired in by :mod:`augself.cli`).

Each ``eval`` writes one JSON record ``{"protocol", "dataset", "metrics", "settings", "backbone",
"preprocessing", ...}`` (default ``<run>/eval/<protocol>-<dataset>-<hash>.json``, the hash of the resolved data
path keeping two folders of the same name apart) and prints a one-line summary. An existing result file of another
evaluation is never overwritten.
Protocol defaults follow the paper's evaluation code (Lee et al., NeurIPS 2021; reference §6).

``augself --help`` imports this module (:func:`add_eval_commands`); each command's work (backbone loading, data,
protocols, transfer) is imported inside its handler (start-up policy: :mod:`augself.cli`).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

__all__ = ["add_eval_commands"]

SKIP_HELP = "leave out (and count) image files that cannot be decoded instead of stopping"


def _skip_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-corrupt", action="store_true", help=SKIP_HELP)


def _interpolation_opt(p: argparse.ArgumentParser, default: str | None) -> None:
    # no argparse ``choices``: a bad value is then one line (house rule), from check_interpolation
    p.add_argument(
        "--interpolation",
        default=default,
        metavar="{bicubic,bilinear}",
        help="resize filter of Resize(size) + CenterCrop(size): bicubic (default, the reference's evaluation: "
        "AugSelf datasets.py load_datasets) or bilinear (torchvision's default)"
        + ("" if default else "; overrides the suite's 'interpolation'"),
    )


def _common(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        p.add_argument(
            "--backbone",
            "--runs",
            dest="backbone",
            nargs="+",
            required=True,
            metavar="PATH",
            help="backbone.pt files or run directories (compared side by side)",
        )
    else:
        p.add_argument(
            "--backbone",
            required=True,
            metavar="PATH",
            help="a backbone.pt file or a run directory (uses <run>/backbone.pt and <run>/config.yaml)",
        )
    p.add_argument(
        "--data",
        required=True,
        help="dataset name (synthetic, cifar10, food101, ...) or image folder "
        "(<path>/{train,test}/<class>/<image> or <path>/<class>/<image>)",
    )
    p.add_argument("--root", default=None, help="root folder of a named dataset (default $AUGSELF_DATA or ./data)")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="evaluation resolution (default: the pretraining view size recorded in backbone.pt, else the run's "
        "config.yaml; a different value is used with a warning)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of split carving / episodes (default 0)")
    p.add_argument("--out", default=None, help="output path (default under <run>/eval/)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    _skip_opt(p)
    _interpolation_opt(p, "bicubic")


def _normalisation_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mean",
        type=float,
        nargs="+",
        default=None,
        help="normalisation mean (default: the pretraining one recorded in backbone.pt, else in config.yaml)",
    )
    p.add_argument(
        "--std",
        type=float,
        nargs="+",
        default=None,
        help="normalisation std (default: the pretraining one recorded in backbone.pt, else in config.yaml)",
    )


def _features_opts(p: argparse.ArgumentParser) -> None:
    _normalisation_opts(p)
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="feature cache folder (keyed by backbone weights, dataset, split and preprocessing)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="feature-extraction batch size (default 256)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for decoding (default 0)")


def add_eval_commands(sub: Any) -> None:
    """Add ``eval`` (with sub-commands linear / knn / fewshot / awareness) and ``transfer`` to ``sub``."""
    ev = sub.add_parser("eval", help="evaluate a frozen backbone: linear, knn, fewshot, awareness")
    esub = ev.add_subparsers(dest="protocol", required=True)

    li = esub.add_parser("linear", help="linear evaluation: L-BFGS logistic regression, wd searched on val")
    _common(li)
    _features_opts(li)
    li.add_argument(
        "--wd-grid-size", type=int, default=45, help="number of weight decays in logspace(-6, 5, N) (paper: 45)"
    )
    li.add_argument(
        "--metric",
        choices=["top1", "class-avg"],
        default=None,
        help="wd-selection metric (default: the dataset's convention, else top1)",
    )
    li.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="val fraction carved from train when the dataset has no val split (default 0.1)",
    )
    li.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations per wd (default 1000)")
    li.add_argument(
        "--sgd",
        action="store_true",
        help="SGD probe with augmentation instead of L-BFGS (datasets too large for full batch)",
    )
    li.add_argument("--epochs", type=int, default=100, help="SGD probe epochs (default 100)")
    li.add_argument("--lr", type=float, default=0.1, help="SGD probe lr per 256 images (default 0.1)")
    li.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="SGD probe on fixed features (no crop/flip augmentation)",
    )
    li.set_defaults(func=_eval_protocol)

    kn = esub.add_parser("knn", help="weighted cosine kNN (k = 200, T = 0.1)")
    _common(kn)
    _features_opts(kn)
    kn.add_argument("--k", type=int, default=200, help="neighbours (default 200)")
    kn.add_argument("--t", type=float, default=0.1, help="temperature (default 0.1)")
    kn.set_defaults(func=_eval_protocol)

    fs = esub.add_parser("fewshot", help="N-way K-shot logistic regression on frozen features")
    _common(fs)
    _features_opts(fs)
    fs.add_argument("--ways", type=int, default=5, help="classes per episode (default 5)")
    fs.add_argument("--shots", type=int, nargs="+", default=[1, 5], help="support images per class (default 1 5)")
    fs.add_argument("--queries", type=int, default=16, help="query images per class (default 16)")
    fs.add_argument("--episodes", type=int, default=2000, help="episodes (default 2000)")
    fs.add_argument(
        "--split",
        default=None,
        help="image pool (default: every split of an image folder, 'all' of a named set, 'test' of synthetic)",
    )
    fs.set_defaults(func=_eval_protocol)

    aw = esub.add_parser("awareness", help="invariance / predictability of each augmentation, runs side by side")
    _common(aw, many=True)
    aw.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    aw.set_defaults(func=_eval_awareness)

    tr = sub.add_parser("transfer", help="run a transfer suite (YAML) over several runs; table + chart")
    tr.add_argument("--suite", required=True, help="suite YAML (see configs/transfer/small.yaml)")
    tr.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="RUN",
        help="run directories or backbone.pt files; the first is the reference for the differences",
    )
    tr.add_argument("--labels", nargs="+", default=None, help="column names for the runs (default: run folder names)")
    tr.add_argument("--out", required=True, help="output folder (results.json, results.md, results.png)")
    tr.add_argument("--size", type=int, default=None, help="override the evaluation resolution of every run")
    _normalisation_opts(tr)
    tr.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, ...")
    tr.add_argument("--cache", default=None, metavar="DIR", help="feature cache folder (default <out>/features)")
    tr.add_argument("--no-cache", action="store_true", help="do not keep features on disk")
    tr.add_argument("--batch-size", type=int, default=None, help="feature-extraction batch size (default 256)")
    tr.add_argument("--workers", type=int, default=0, help="DataLoader workers for decoding (default 0)")
    tr.add_argument(
        "--recompute",
        action="store_true",
        help="evaluate everything again (default: reuse the results an earlier run saved in <out>/records)",
    )
    tr.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    _skip_opt(tr)
    _interpolation_opt(tr, None)
    tr.set_defaults(func=_transfer)


def _device(d: str | None) -> str | None:
    if d in (None, "", "auto"):
        return None
    import torch

    if str(d).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {d}: CUDA is not available on this machine (use --device cpu or auto)")
    try:
        torch.device(d)
    except RuntimeError as e:
        raise ValueError(f"invalid --device {d!r}: {e}") from e
    return d


def _protocol_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.protocol == "linear":
        return {
            "wd_grid_size": args.wd_grid_size,
            "metric": args.metric,
            "val_fraction": args.val_fraction,
            "seed": args.seed,
            "max_iter": args.max_iter,
            "sgd": args.sgd,
            "sgd_epochs": args.epochs,
            "sgd_lr": args.lr,
            "sgd_batch_size": args.batch_size,
            "sgd_augment": args.augment,
        }
    if args.protocol == "knn":
        return {"k": args.k, "t": args.t}
    return {
        "ways": args.ways,
        "shots": list(args.shots),
        "queries": args.queries,
        "episodes": args.episodes,
        "seed": args.seed,
        "split": args.split,
    }


def _eval_protocol(args: argparse.Namespace) -> None:
    from augself.eval.backbone_loading import check_interpolation, default_out, load_for_eval
    from augself.eval.eval_data import FeatureSource, resolve_data
    from augself.eval.protocols import protocol_settings, run_protocol
    from augself.eval.report import check_replaceable, summary_line, write_json

    interpolation = check_interpolation(args.interpolation)
    device = _device(args.device)
    if args.size is not None and args.size < 1:
        raise ValueError(f"--size must be positive, got {args.size}")
    settings = _protocol_settings(args)

    protocol_settings(args.protocol, settings)
    data = resolve_data(args.data, root=args.root, seed=args.seed, skip_corrupt=args.skip_corrupt)
    lb = load_for_eval(args.backbone, size=args.size, mean=args.mean, std=args.std, interpolation=interpolation)
    out = Path(args.out) if args.out else default_out(lb, args.protocol, data.file_stem())
    evaluation = {"protocol": args.protocol, "backbones": [str(lb.path)], "data": data.identity()}
    check_replaceable(out, evaluation)  # before any work
    src = FeatureSource(
        lb,
        data,
        device=device,
        cache=args.cache,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=args.progress,
    )
    record = run_protocol(args.protocol, src, settings)
    record["evaluation"] = evaluation
    write_json(record, out)
    print(f"{summary_line(record)}\nwrote {out}")


def _eval_awareness(args: argparse.Namespace) -> None:
    from augself.eval.backbone_loading import backbone_file, check_interpolation
    from augself.eval.eval_data import resolve_data
    from augself.eval.report import check_replaceable

    interpolation = check_interpolation(args.interpolation)
    device = _device(args.device)
    backbones = [str(backbone_file(b).resolve()) for b in args.backbone]  # a missing backbone: clear error, no work
    data = resolve_data(args.data, root=args.root, skip_corrupt=args.skip_corrupt)  # ... and a missing folder
    try:
        from augself.eval.awareness import run_awareness
    except ImportError as e:  # pragma: no cover - the module ships with the package
        raise ValueError(f"the awareness report is not available: {e}") from e
    if args.out:
        out = Path(args.out)
    else:
        first = Path(args.backbone[0]).expanduser()
        base = first if first.is_dir() else first.parent
        out = base / "eval" / f"awareness-{data.file_stem()}"
    evaluation = {"protocol": "awareness", "backbones": backbones, "data": data.identity()}
    check_replaceable(out / "awareness.json", evaluation)
    kw: dict[str, Any] = {"skip_corrupt": args.skip_corrupt, "evaluation": evaluation}
    if args.root is not None and "root" in inspect.signature(run_awareness).parameters:
        kw["root"] = args.root
    result = run_awareness(
        list(args.backbone),
        args.data,
        out,
        size=args.size,
        n=args.n,
        seed=args.seed,
        device=device or "auto",
        progress=args.progress,
        interpolation=interpolation,
        **kw,
    )
    files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    runs = result.get("runs") if isinstance(result, dict) else None
    n_runs = len(runs) if isinstance(runs, list) else len(args.backbone)
    print(f"awareness on {args.data}: {n_runs} run(s)\nwrote {out}" + (f" ({', '.join(files)})" if files else ""))


def _transfer(args: argparse.Namespace) -> None:
    from augself.eval.transfer import run_transfer

    device = _device(args.device)
    cache: Any = False if args.no_cache else (args.cache or True)
    out = Path(args.out)
    run_transfer(
        args.suite,
        args.runs,
        out,
        labels=args.labels,
        size=args.size,
        mean=args.mean,
        std=args.std,
        device=device,
        cache=cache,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=args.progress,
        resume=not args.recompute,
        skip_corrupt=args.skip_corrupt,
        interpolation=args.interpolation,
    )
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    print((out / "results.md").read_text().split("\n\n", 3)[-1].rstrip())
