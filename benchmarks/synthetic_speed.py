"""Throughput of the synthetic controlled-factor generator on one CPU core (prints images/s).

Usage: python benchmarks/synthetic_speed.py [--n 20480] [--sizes 32 64]
(generation always runs single-threaded; see augself.data.synthetic.generate)
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
    args = ap.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes:
        make_split(1024, size, seed=123)  # warm-up
        t = time.perf_counter()
        make_split(args.n, size, seed=0)
        dt = time.perf_counter() - t
        rate = args.n / dt
        print(f"size {size:3d}: {rate:8.0f} images/s ({args.n} images in {dt:.2f} s, 1 core)")


if __name__ == "__main__":
    main()
