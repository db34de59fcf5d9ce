"""Real-data check of AugSelf: pretrain on ``cifar10-small``, evaluate transfer through the public CLI.

Pretrains the small CNN at 32 px on ``../shared/data/cifar10-small/train`` with SimCLR and with
SimCLR + AugSelf(crop, color) (``configs/cpu/simclr_small*.yaml``), then runs ``augself transfer`` with the
suite ``configs/transfer/small.yaml``: linear evaluation (L-BFGS, the paper's protocol) and 5-way 5-shot on the
cifar10-small test split, ``dtd10-64`` and ``food10-64``. Everything goes through the ``augself`` command line,
exactly as a user would run it::

    python benchmarks/transfer_small.py --epochs 20 --out bench-out/transfer_small

Finished pretraining runs (``<out>/<arm>/backbone.pt``) are reused, and an interrupted one is resumed, so the
script can be re-run after a kill. Prints the transfer table (rows = dataset/protocol, columns = runs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARMS = {
    "simclr": REPO / "configs/cpu/simclr_small.yaml",
    "simclr_augself": REPO / "configs/cpu/simclr_small_augself.yaml",
}


def _augself(*args: str) -> None:
    exe = Path(sys.executable).with_name("augself")
    cmd = [str(exe) if exe.exists() else "augself", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--out", default="bench-out/transfer_small")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--suite", default=str(REPO / "configs/transfer/small.yaml"))
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="extra pretraining overrides (key=value)")
    args = p.parse_args()

    train = Path(args.data_root) / "cifar10-small"
    if not (train / "train").is_dir():
        sys.exit(f"expected the image folder {train}/train/<class>/*.jpg (see ../shared/data/README.md)")
    out = Path(args.out)
    runs = []
    t0 = time.time()
    for arm in args.arms.split(","):
        run = out / arm
        runs.append(run)
        if (run / "backbone.pt").exists():
            print(f"[transfer_small] reusing {run}")
            continue
        resume = ["--resume"] if (run / "checkpoints" / "last.ckpt").exists() else []
        _augself(
            "pretrain",
            "--config",
            str(ARMS[arm]),
            *resume,
            f"out={run}",
            f"seed={args.seed}",
            f"data.name={train}",
            "data.split=train",
            f"trainer.epochs={args.epochs}",
            *args.overrides,
        )
    t1 = time.time()
    env_note = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs"
    print(f"[transfer_small] pretraining took {(t1 - t0) / 60:.1f} min ({env_note})")
    _augself("transfer", "--suite", args.suite, "--runs", *map(str, runs), "--out", str(out / "transfer"))
    print(f"[transfer_small] transfer evaluation took {(time.time() - t1) / 60:.1f} min")
    table = out / "transfer" / "results.md"
    if table.exists():
        print(table.read_text())


if __name__ == "__main__":
    main()
