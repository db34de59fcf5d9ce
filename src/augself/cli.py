"""The ``augself`` command line: pretrain, evaluate, compare transfer, run the demo, preview augmentations.

Start-up: ``augself --help`` and building the parser load only the parser modules (this one, :mod:`augself.demo`,
:mod:`augself.eval.cli`, :mod:`augself.export_cli`, :mod:`augself.quiet`) on top of ``import augself`` (torch).
Each command's work is imported inside its handler (lazy on purpose): pretraining pulls Lightning (~4-7 s),
``preview`` the config, data and PIL (~0.35 s), the eval commands data and PIL (~0.15-0.3 s), ``plot`` matplotlib
(when it draws); measured with ``python -X importtime``, see docs/architecture.md "Start-up and imports".
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from augself.demo import add_demo_arguments, run_demo
from augself.eval.cli import add_eval_commands
from augself.export_cli import add_export_command
from augself.quiet import quiet_output

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError, OSError)
"""Bad input, a bad configuration, an unusable output folder: one line on stderr, exit status 2."""
TRAINING_FAILURES: tuple[type[BaseException], ...] = (FloatingPointError,)
"""A NaN / inf loss or weights: one line naming the step, the loss terms and the last good checkpoint, exit 1."""


def _format_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> str:
    return f"augself: warning: {message}\n"


def _pretrain(args: argparse.Namespace) -> None:
    from augself.config import load_config
    from augself.train.interrupt import TrainingInterrupted
    from augself.train.run import is_fast_dev_run, run_pretrain
    from augself.train.run_folder import is_launch_rank_zero

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out={args.out}")
    if args.skip_corrupt:
        overrides.append("data.skip_corrupt=true")
    cfg = load_config(args.config, overrides)
    try:
        out = run_pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    except TrainingInterrupted as e:  # SIGTERM / SIGINT: one line, exit 128 + signal (143 / 130), never 0
        print(f"augself pretrain: {e}", file=sys.stderr, flush=True)
        raise SystemExit(e.exit_code) from None
    if not is_launch_rank_zero():  # DDP: every process runs this command; rank 0 reports
        return
    if is_fast_dev_run(cfg):
        print(f"trainer.fast_dev_run: the smoke test passed; nothing was saved ({cfg.out} is untouched)")
    else:
        print(f"run directory: {out} (backbone.pt, config.yaml, metrics.csv, checkpoints/)")


def _preview(args: argparse.Namespace) -> None:
    from augself.augment.preview import preview_dataset, preview_run

    if args.run is not None:
        clash = [o for o, v in (("--config", args.config), ("--size", args.size)) if v is not None]
        if clash:
            raise ValueError(
                f"--run previews the run's own config: drop {', '.join(clash)} (or use key=value overrides)"
            )
        for path in preview_run(
            args.run, args.out, data=args.data, n_pairs=args.pairs, seed=args.seed, overrides=args.overrides
        ):
            print(f"wrote {path}")
        return
    path = preview_dataset(
        args.data,
        args.out or "runs/preview.png",
        size=args.size,
        n_pairs=args.pairs,
        seed=args.seed,
        config=args.config,
        overrides=args.overrides,
    )
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> None:
    run_demo(args)


def _plot(args: argparse.Namespace) -> None:
    from pathlib import Path

    from augself.train.curves import write_curves

    out = args.out or (Path(args.runs[0]) / "curves.png" if len(args.runs) == 1 else Path("curves.png"))
    print(f"wrote {write_curves(args.runs, out)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="augself", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show full tracebacks for user errors")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show Lightning's info lines and the dependency warnings a normal run hides (augself.quiet); "
        "may also follow the command",
    )
    sub = p.add_subparsers(dest="command", required=True)

    pt = sub.add_parser("pretrain", help="pretrain a backbone (any method, optional AugSelf / E-SSL)")
    pt.add_argument("--config", help="YAML config (see configs/)")
    pt.add_argument("--out", help="run directory (same as out=...)")
    pt.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    pt.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its backbone.pt, config.yaml, checkpoints and logs are removed)",
    )
    pt.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="skip (and count) image files that cannot be decoded instead of stopping (data.skip_corrupt=true)",
    )
    pt.add_argument("overrides", nargs="*", help="key=value overrides, e.g. augself.crop=1.0 trainer.epochs=10")
    pt.set_defaults(func=_pretrain)

    pv = sub.add_parser(
        "preview",
        help="render augmented view pairs with their parameter records to a PNG",
        description="Render views with their recorded parameters and AugSelf targets to a PNG. With --config: the "
        "views of that pretraining config (every augment view, per-view settings, E-SSL's rotation view when "
        "essl.weight > 0) on its data (data.name, data.root, data.size). Without: a fixed demo pipeline, not any "
        "config's: two SimCLR/AugSelf views (crop 0.2-1, flip 0.5, jitter 0.8, grayscale 0.2, blur 0.5) plus "
        "solarize 0.2 and rotation 0.25 of side --size on --data. With --run: a run pretrained with "
        "augment.learned, its views drawn from the learned per-input distributions and each input's learned ranges.",
    )
    pv.add_argument("--config", help="pretraining YAML config whose views to show (see configs/)")
    pv.add_argument("--data", help="dataset name or ImageFolder path (default: the config's data.name, else synthetic)")
    pv.add_argument(
        "--run",
        help="a run folder pretrained with augment.learned: its views drawn from the learned per-input distributions "
        "(learned.pt), each input's learned ranges, the crop distribution's heat maps (<out stem>-crop.png)",
    )
    pv.add_argument("--out", help="PNG (default runs/preview.png; with --run RUN/preview.png)")
    pv.add_argument("--size", type=int, help="view side without --config (default 64); with it set augment.size=N")
    pv.add_argument("--pairs", type=int, default=6)
    pv.add_argument("overrides", nargs="*", help="key=value overrides of --config, e.g. essl.weight=0.4")
    pv.add_argument("--seed", type=int, default=0)
    pv.set_defaults(func=_preview)

    dm = sub.add_parser("demo", help="SimCLR vs SimCLR + AugSelf on generated data, in minutes on a CPU")
    add_demo_arguments(dm)
    dm.set_defaults(func=_demo)

    pl = sub.add_parser("plot", help="training curves (losses per term, lr, kNN / probe accuracy) of runs, overlaid")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each with the metrics.csv of a pretraining)")
    pl.add_argument("--out", help="image file (.png, .pdf, .svg); default RUN/curves.png for one run, else curves.png")
    pl.set_defaults(func=_plot)

    add_eval_commands(sub)
    add_export_command(sub)  # augself export: a backbone as a plain torchvision / timm state_dict
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if "--verbose" in extra:  # also accepted after the command: ``augself pretrain ... --verbose``
        extra = [e for e in extra if e != "--verbose"]
        args.verbose = True
    # ``key=value`` overrides may also follow options (``... 'augself={crop: 1}' --out runs/x trainer.epochs=5``)
    if (
        extra
        and isinstance(getattr(args, "overrides", None), list)
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    original = warnings.formatwarning
    if not args.debug:
        warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        with quiet_output(verbose=args.verbose):
            args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"augself {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TRAINING_FAILURES as e:
        if args.debug:
            raise
        print(f"augself {args.command}: error: {e}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original
    return 0


if __name__ == "__main__":
    sys.exit(main())
