"""How much of AugSelf's hue target can any head recover from two views, as a function of the hue jitter?

AugSelf's colour target includes ``(h_a - h_b) / (2 r)`` for hue shifts ``h ~ U(-r, r)`` (Lee et al., NeurIPS
2021; torchvision's hue jitter). The views only show hues modulo 1, so the best any head can do is predict
``E[target | (h_a - h_b) mod 1]``. This script estimates, by Monte Carlo, the fraction of the target's variance
that this best predictor explains (R^2) for several ``r``::

    python benchmarks/hue_target_ambiguity.py

For ``r <= 0.25`` the difference never wraps (R^2 = 1); for ``r = 0.5`` the conditional mean is exactly 0
(R^2 = 0): the hue part of the target carries no learnable signal. The demo's data design follows from this.
"""

from __future__ import annotations

import argparse

import numpy as np


def recoverable_r2(r: float, n: int = 2_000_000, bins: int = 400, seed: int = 0) -> float:
    """R^2 of the Bayes-optimal prediction of ``(h_a - h_b) / (2 r)`` from ``(h_a - h_b) mod 1``."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(-r, r, n) - rng.uniform(-r, r, n)
    t = d / (2 * r)
    cell = np.minimum((np.mod(d, 1.0) * bins).astype(np.int64), bins - 1)
    mean = np.bincount(cell, t, bins) / np.maximum(np.bincount(cell, None, bins), 1)
    return float(1.0 - np.mean((t - mean[cell]) ** 2) / np.var(t))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--r", type=float, nargs="+", default=[0.1, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
    p.add_argument("--n", type=int, default=2_000_000)
    args = p.parse_args()
    print("| hue jitter r | recoverable R^2 of the hue target |\n|---:|---:|")
    for r in args.r:
        print(f"| {r:g} | {recoverable_r2(r, args.n):.3f} |")


if __name__ == "__main__":
    main()
