"""Linear-eval speed: augself's warm-started L-BFGS grid search vs scikit-learn on the same features.

Both run the paper's protocol (Lee et al., NeurIPS 2021; reference §6.1): weight decay over
``logspace(-6, 5, 45)`` on a validation split, objective ``sum CE + wd ||[W; b]||^2`` (scikit-learn:
``LogisticRegression(C = 1 / (2 wd), fit_intercept=False)`` on ``[x, 1]``, lbfgs, ``warm_start=True``), the
best model refit on train ∪ val from its own solution, test top-1. Both stop at the same gradient tolerance
(scikit-learn's ``tol`` and our ``tol`` are both ``max |grad|`` of the sample-mean objective) and the same
iteration cap. ``--sk-tol 1e-10 --max-iter 5000`` runs scikit-learn to the reference code's tolerance
instead (``tolerance_grad=1e-10``, ``max_iter=5000``: converged), the accuracy our default solver must match.

    .venv/bin/python benchmarks/linear_eval_speed.py                       # 10k x 512, 10 and 100 classes
    .venv/bin/python benchmarks/linear_eval_speed.py --sk-tol 1e-10 --max-iter 5000   # converged reference
    .venv/bin/python benchmarks/linear_eval_speed.py --real feats.pt   # {"train": (x, y), "test": (x, y)}

Prints a Markdown table: time ratio (target >= 5x) and test accuracy difference (target <= 0.5 points).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

from augself.eval.linear import WD_GRID, linear_eval, seeded_split


def gaussian_clusters(
    n_train: int, n_test: int, dim: int, classes: int, *, sep: float, seed: int
) -> tuple[torch.Tensor, ...]:
    """Unnormalised Gaussian-cluster features: x = 2 + mu_y + N(0, I) with mu_c ~ N(0, sep^2 / dim * I)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(classes, dim, generator=g) * sep / dim**0.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (n,), generator=g)
        return 2.0 + mu[y] + torch.randn(n, dim, generator=g), y

    return (*draw(n_train), *draw(n_test))


def sklearn_protocol(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    tol: float,
    max_iter: int,
) -> dict[str, Any]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    def aug(x: np.ndarray) -> np.ndarray:
        return np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)])

    xtr, xva, xte = aug(xtr), aug(xva), aug(xte)
    clf = LogisticRegression(fit_intercept=False, tol=tol, max_iter=max_iter, warm_start=True)
    best = (-1.0, 0.0, None)
    iters, curve = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for wd in WD_GRID:
            clf.set_params(C=1.0 / (2.0 * wd))
            clf.fit(xtr, ytr)
            iters.append(int(clf.n_iter_.max()))
            acc = float((clf.predict(xva) == yva).mean() * 100)
            curve.append(acc)
            if acc > best[0]:
                best = (acc, wd, clf.coef_.copy())
        final = LogisticRegression(
            C=1.0 / (2.0 * best[1]), fit_intercept=False, tol=tol, max_iter=max_iter, warm_start=True
        )
        final.classes_ = np.unique(ytr)
        final.coef_ = best[2]
        final.fit(np.vstack([xtr, xva]), np.concatenate([ytr, yva]))
    return {
        "time_s": time.perf_counter() - t0,
        "best_wd": best[1],
        "test_top1": float((final.predict(xte) == yte).mean() * 100),
        "iters": sum(iters) + int(final.n_iter_.max()),
        "val_curve": curve,
    }


def run_case(
    name: str, x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, args: argparse.Namespace
) -> dict[str, Any]:
    tr, va = seeded_split(len(x), 0.1, seed=0)
    kw = dict(tol=args.tol, max_iter=args.max_iter)
    # warm-up (first use of torch.optim / kernels), not timed
    linear_eval(x[:200], y[:200], xt[:50], yt[:50], wd_grid=WD_GRID[:2], progress=False, **kw)
    ours = linear_eval(
        x[tr],
        y[tr],
        xt,
        yt,
        val_feats=x[va],
        val_labels=y[va],
        progress=False,
        device=args.device,
        precondition=not args.no_precondition,
        **kw,
    )
    sk = sklearn_protocol(
        x[tr].double().numpy(),
        y[tr].numpy(),
        x[va].double().numpy(),
        y[va].numpy(),
        xt.double().numpy(),
        yt.numpy(),
        tol=args.sk_tol if args.sk_tol is not None else args.tol,
        max_iter=args.max_iter,
    )
    return {
        "case": name,
        "shape": f"{len(tr)}+{len(va)} / {len(xt)} x {x.shape[1]}, {int(y.max()) + 1} cl.",
        "ours_s": ours.time_s,
        "sk_s": sk["time_s"],
        "ratio": sk["time_s"] / ours.time_s,
        "ours_acc": ours.test_top1,
        "sk_acc": sk["test_top1"],
        "ours_wd": ours.best_wd,
        "sk_wd": sk["best_wd"],
        "ours_iters": sum(ours.iterations) + ours.refit_iterations,
        "sk_iters": sk["iters"],
        "device": ours.settings["device"],
        # val top-1 of both at both selected wd (near-ties explain different selections)
        "val_at_wd": {
            f"{w:.2g}": (ours.val_curve[WD_GRID.index(w)]["top1"], sk["val_curve"][WD_GRID.index(w)])
            for w in {ours.best_wd, sk["best_wd"]}
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=10000, help="train+val samples (val = seeded 10 %%)")
    p.add_argument("--n-test", type=int, default=5000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    p.add_argument("--sep", type=float, default=3.0, help="cluster separation (sets the difficulty)")
    p.add_argument("--real", help="a .pt with {'train': (x, y), 'test': (x, y)} real features")
    p.add_argument("--tol", type=float, default=1e-5, help="max |grad| of the mean objective, both solvers")
    p.add_argument(
        "--sk-tol",
        type=float,
        default=None,
        help="scikit-learn tol if different from --tol (1e-10 + --max-iter 5000: the reference's converged run)",
    )
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both (torch + BLAS)")
    p.add_argument("--device", default=None, help="ours: cpu / cuda (default: cuda when available)")
    p.add_argument("--no-precondition", action="store_true", help="ours: L-BFGS on theta (no preconditioner)")
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    load0 = os.getloadavg()
    with threadpool_limits(limits=args.threads):
        for c in args.classes:
            data = gaussian_clusters(args.n_train, args.n_test, args.dim, c, sep=args.sep, seed=c)
            rows.append(run_case(f"gaussian clusters, sep {args.sep}", *data, args))
            print(f"done: {rows[-1]} (load average {os.getloadavg()})", flush=True)
        if args.real:
            d = torch.load(args.real, map_location="cpu", weights_only=True)
            rows.append(run_case(f"real: {os.path.basename(args.real)}", *d["train"], *d["test"], args))
    print(
        f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, tol {args.tol} "
        f"(scikit-learn {args.sk_tol if args.sk_tol is not None else args.tol}), "
        f"max_iter {args.max_iter}, grid logspace(-6, 5, 45); load average (1/5/15 min) before "
        f"{'/'.join(f'{v:.2f}' for v in load0)}, after {'/'.join(f'{v:.2f}' for v in os.getloadavg())}\n"
    )
    print(
        "| features | train+val / test x d, classes | ours (s) | sklearn (s) | speed-up | ours top-1 | "
        "sklearn top-1 | diff (pts) | best wd ours / sklearn | L-BFGS iters (grid + refit) ours / sklearn | device |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['shape']} | {r['ours_s']:.1f} | {r['sk_s']:.1f} | {r['ratio']:.1f}x | "
            f"{r['ours_acc']:.2f} | {r['sk_acc']:.2f} | {r['ours_acc'] - r['sk_acc']:+.2f} | "
            f"{r['ours_wd']:.2g} / {r['sk_wd']:.2g} | {r['ours_iters']} / {r['sk_iters']} | {r['device']} |"
        )


if __name__ == "__main__":
    main()
