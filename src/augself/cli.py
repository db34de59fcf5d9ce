"""The ``augself`` command line: pretrain, evaluate, compare transfer, run the demo, preview augmentations."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError, OSError)


def _pretrain(args: argparse.Namespace) -> None:
    from augself.config import load_config
    from augself.train.run import run_pretrain

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out={args.out}")
    cfg = load_config(args.config, overrides)
    out = run_pretrain(cfg, resume=args.resume)
    print(f"run directory: {out}\nbackbone: {out / 'backbone.pt'}")


def _preview(args: argparse.Namespace) -> None:
    from augself.augment.preview import preview_dataset

    path = preview_dataset(args.data, args.out, size=args.size, n_pairs=args.pairs, seed=args.seed)
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> None:
    from augself.demo import run_demo

    run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="augself", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show full tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True)

    pt = sub.add_parser("pretrain", help="pretrain a backbone (any method, optional AugSelf / E-SSL)")
    pt.add_argument("--config", help="YAML config (see configs/)")
    pt.add_argument("--out", help="run directory (same as out=...)")
    pt.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    pt.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. augself.crop=1.0 trainer.epochs=10"
    )
    pt.set_defaults(func=_pretrain)

    pv = sub.add_parser("preview", help="render augmented view pairs with their parameter records to a PNG")
    pv.add_argument("--data", default="synthetic", help="dataset name or ImageFolder path")
    pv.add_argument("--out", default="runs/preview.png")
    pv.add_argument("--size", type=int, default=64)
    pv.add_argument("--pairs", type=int, default=6)
    pv.add_argument("--seed", type=int, default=0)
    pv.set_defaults(func=_preview)

    try:
        from augself.demo import add_demo_arguments
    except ImportError:
        pass
    else:
        dm = sub.add_parser("demo", help="SimCLR vs SimCLR + AugSelf on generated data, in minutes on a CPU")
        add_demo_arguments(dm)
        dm.set_defaults(func=_demo)

    try:
        from augself.eval.cli import add_eval_commands
    except ImportError:
        pass
    else:
        add_eval_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"augself {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
