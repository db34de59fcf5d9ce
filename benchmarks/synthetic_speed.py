"""Throughput of the synthetic controlled-factor generator on one CPU core (prints images/s).

Usage: python benchmarks/synthetic_speed.py [--n 20480] [--sizes 32 64] [--repeats 3]
(generation always runs single-threaded; see augself.data.synthetic.generate). Prints the best of ``--repeats``
runs (the least disturbed on a shared machine) and every run.
"""

from __future__ import annotations

import argparse
import time

import torch

from augself.data.synthetic import make_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20480)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes:
        make_split(1024, size, seed=123)  # warm-up
        rates = []
        for r in range(args.repeats):
            t = time.perf_counter()
            make_split(args.n, size, seed=r)
            rates.append(args.n / (time.perf_counter() - t))
        runs = ", ".join(f"{v:.0f}" for v in rates)
        best = max(rates)
        print(f"size {size:3d}: {best:8.0f} images/s, best of {args.repeats} ({args.n} images each: {runs}; 1 core)")


if __name__ == "__main__":
    main()
