"""Few-shot evaluation on frozen features: N-way K-shot episodes, logistic regression per episode.

Protocol (Lee et al., NeurIPS 2021, ``transfer_few_shot.py``; reference §6.2): defaults 5-way, 1- and 5-shot,
16 queries per class, 2000 episodes; classes with <= K images are dropped; per episode N classes are drawn,
and per class K support + Q query images without replacement (queries drawn with replacement from the class's
non-support images when the class has fewer than K + Q). A logistic regression with C = 1 is fitted on the
raw (unnormalised) support features; the score is the query accuracy, reported as
mean ± 1.96 · std / sqrt(episodes).

Deviation (documented): the reference uses scikit-learn's ``liblinear`` (one-vs-rest, intercept penalised).
We solve the *multinomial* problem of ``LogisticRegression(C=1)`` (lbfgs solver; intercept unpenalised),
for all episodes at once with a batched Newton method in the span of the support features (the
representer theorem: ``W = X_s^T A``), which makes 2000 episodes take seconds instead of minutes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from augself.eval.device import default_device

__all__ = ["batched_logreg", "batched_logreg_dual", "fewshot_eval", "sample_episodes"]


def sample_episodes(
    labels: Tensor,
    *,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 16,
    n_episodes: int = 2000,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded episodes: ``(support (T, N, K), query (T, N, Q), classes (T, N))`` indices into ``labels``.

    Classes with <= ``k_shot`` samples are dropped (reference). Per class, K + Q samples are drawn without
    replacement; when the class is too small, queries are drawn with replacement from its non-support samples
    (support and query never overlap).
    """
    labels = labels.view(-1).long().cpu()
    if k_shot < 1 or n_query < 1 or n_way < 2 or n_episodes < 1:
        raise ValueError("need n_way >= 2, k_shot >= 1, n_query >= 1, n_episodes >= 1")
    valid = labels[labels >= 0]
    counts = torch.bincount(valid) if valid.numel() else torch.zeros(0, dtype=torch.long)
    eligible = (counts > k_shot).nonzero().view(-1)
    if eligible.numel() < n_way:
        raise ValueError(
            f"few-shot {n_way}-way {k_shot}-shot needs {n_way} classes with more than {k_shot} samples; "
            f"only {eligible.numel()} qualify"
        )
    order = torch.argsort(labels, stable=True)
    starts = torch.zeros(len(counts) + 1, dtype=torch.long)
    starts[1:] = counts.cumsum(0)
    starts += int((labels < 0).sum())  # negative (unlabelled) samples sort first in ``order``
    g = torch.Generator().manual_seed(int(seed))
    sup = torch.empty(n_episodes, n_way, k_shot, dtype=torch.long)
    qry = torch.empty(n_episodes, n_way, n_query, dtype=torch.long)
    cls = torch.empty(n_episodes, n_way, dtype=torch.long)
    max_count = int(counts[eligible].max())
    m = min(max_count, k_shot + n_query)
    chunk = max(1, 2_000_000 // (n_way * max_count))
    for s in range(0, n_episodes, chunk):
        t = min(chunk, n_episodes - s)
        chosen = eligible[torch.rand(t, eligible.numel(), generator=g).argsort(1)[:, :n_way]]  # (t, N)
        cnt = counts[chosen]
        # a random ordering of each chosen class's members: smallest random keys among the valid positions
        keys = torch.rand(t, n_way, max_count, generator=g)
        keys[torch.arange(max_count).expand(t, n_way, -1) >= cnt[..., None]] = 2.0
        pos = keys.topk(m, dim=2, largest=False, sorted=True).indices  # (t, N, m)
        qsel = torch.arange(k_shot, k_shot + n_query).expand(t, n_way, -1)
        short = (cnt < k_shot + n_query)[..., None]
        if bool(short.any()):  # queries with replacement from the non-support members
            u = torch.rand(t, n_way, n_query, generator=g)
            rep = k_shot + (u * (cnt[..., None] - k_shot)).long().clamp_max(max(0, m - 1 - k_shot))
            qsel = torch.where(short, rep, qsel.clamp_max(m - 1))
        first = starts[chosen][..., None]
        sup[s : s + t] = order[first + pos[..., :k_shot]]
        qry[s : s + t] = order[first + pos.gather(2, qsel)]
        cls[s : s + t] = chosen
    return sup, qry, cls


def batched_logreg_dual(
    gram: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    C: float = 1.0,  # noqa: N803 (scikit-learn's name)
    fit_intercept: bool = True,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batched multinomial logistic regression in the span of the training points (kernel form).

    Solves, for each problem t, ``min_{W,b} C * sum_i CE(x_i W + b, y_i) + 0.5 ||W||^2`` (scikit-learn's
    ``LogisticRegression(C)`` objective: intercept not penalised) with ``W = X^T A``, from the Gram matrices
    ``gram = X X^T (T, n, n)``. Damped Newton with a batched Armijo backtracking line search; at the optimum
    ``A = C (Y - P)``. Newton step (from ``A = 0, b = 0``): with ``Z = gram A + 1 b^T``, ``P = softmax(Z)``,
    ``G = C (P - Y) + A`` (so ``dJ/dA = gram G``) and per-sample softmax Jacobians ``S_i``, solve
    ``dA_i + C S_i (gram dA + 1 db^T)_i = -G_i`` and ``sum_i S_i (gram dA + 1 db^T)_i = -sum_i (P - Y)_i``
    (the primal Newton system with ``gram`` cancelled on the left). Returns ``(A (T, n, K), b (T, K),
    iterations (T,))``; ``b`` sums to 0 over classes (the unpenalised intercept is defined up to a constant).
    """
    T, n, _ = gram.shape
    K = int(num_classes)
    dt, dev = gram.dtype, gram.device
    # Softmax is invariant to adding a constant to all logits: the iterates keep every row of A (and b) in the
    # sum-zero subspace, so the Newton system is solved in an orthonormal basis E (K, K-1) of that subspace.
    E = torch.linalg.qr(torch.eye(K, dtype=dt, device=dev) - 1.0 / K)[0][:, : K - 1]
    k1 = K - 1
    nk = n * k1
    p = nk + (k1 if fit_intercept else 0)
    Y_all = torch.nn.functional.one_hot(y.long(), K).to(dt)  # (T, n, K)
    A_all = torch.zeros(T, n, K, dtype=dt, device=dev)
    b_all = torch.zeros(T, K, dtype=dt, device=dev)
    iters = torch.zeros(T, dtype=torch.long, device=dev)
    steps = 0.5 ** torch.arange(0, 30, dtype=dt, device=dev)  # Armijo candidates 1, 1/2, 1/4, ...
    idx = torch.arange(T, device=dev)  # problems not yet converged
    diag = torch.arange(nk, device=dev)
    for _ in range(max_iter):
        Kg, Y, A, b = gram[idx], Y_all[idx], A_all[idx], b_all[idx]
        m = idx.numel()
        Z = Kg @ A + b[:, None, :]
        P = torch.softmax(Z, -1)
        G = C * (P - Y) + A  # dJ/dA = gram @ G
        gb = C * (P - Y).sum(1) if fit_intercept else torch.zeros_like(b)
        res = torch.maximum(G.abs().amax((-1, -2)), gb.abs().amax(-1))
        keep = res > tol
        if not bool(keep.any()):
            break
        if not bool(keep.all()):
            idx, Kg, Y, A, b, Z, P, G, gb = (v[keep] for v in (idx, Kg, Y, A, b, Z, P, G, gb))
            m = idx.numel()
        iters[idx] += 1
        # Newton system in the E basis: dA + C S (gram dA + 1 db^T) = -G ;  sum_i S_i (gram dA + 1 db^T)_i =
        # -gb/C
        PE = P @ E  # (m, n, K-1)
        S = torch.diag_embed(P) - P[..., :, None] * P[..., None, :]
        S = E.T @ S @ E  # reduced softmax Jacobians (m, n, K-1, K-1), positive definite
        M = torch.empty(m, p, p, dtype=dt, device=dev)
        M[:, :nk, :nk] = torch.einsum("tiab,tij->tiajb", S, Kg).reshape(m, nk, nk).mul_(C)
        M[:, diag, diag] += 1.0
        rhs = torch.empty(m, p, dtype=dt, device=dev)
        rhs[:, :nk] = -(G @ E).reshape(m, nk)
        if fit_intercept:
            M[:, :nk, nk:] = C * S.reshape(m, nk, k1)
            M[:, nk:, :nk] = torch.einsum("tiab,tij->tajb", S, Kg).reshape(m, k1, nk)
            M[:, nk:, nk:] = S.sum(1)
            rhs[:, nk:] = -((PE - Y @ E).sum(1))
        sol = torch.linalg.solve(M, rhs)
        dA = sol[:, :nk].reshape(m, n, k1) @ E.T
        db = sol[:, nk:] @ E.T if fit_intercept else torch.zeros_like(b)
        # Armijo backtracking with all candidate steps evaluated at once
        KdA = Kg @ dA
        dZ = KdA + db[:, None, :]
        slope = (G * KdA).sum((-1, -2)) + (gb * db).sum(-1)  # directional derivative (<= 0)
        KA = Kg @ A
        r0 = 0.5 * (A * KA).sum((-1, -2))
        f0 = C * (torch.logsumexp(Z, -1) - (Z * Y).sum(-1)).sum(-1) + r0
        Zs = Z[None] + steps[:, None, None, None] * dZ[None]  # (S, m, n, K)
        ce = (torch.logsumexp(Zs, -1) - (Zs * Y[None]).sum(-1)).sum(-1)  # (S, m)
        r1 = (A * KdA).sum((-1, -2))
        r2 = 0.5 * (dA * KdA).sum((-1, -2))
        fs = C * ce + r0 + steps[:, None] * r1 + steps[:, None] ** 2 * r2
        ok = fs <= f0[None] + 1e-4 * steps[:, None] * slope[None]
        first = torch.where(ok.any(0), ok.to(torch.uint8).argmax(0), torch.full_like(idx, len(steps) - 1))
        t = steps[first]
        A_all[idx] = A + t[:, None, None] * dA
        b_all[idx] = b + t[:, None] * db
    A, b = A_all, b_all
    return A, b, iters


def batched_logreg(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    C: float = 1.0,  # noqa: N803 (scikit-learn's name)
    fit_intercept: bool = True,
    max_iter: int = 100,
    tol: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """``LogisticRegression(C)`` (multinomial, intercept unpenalised) for a batch of problems.

    ``x`` (T, n, d), ``y`` (T, n) in ``0..num_classes-1``. Returns ``(W (T, d, K), b (T, K))`` such that the
    logits are ``x @ W + b``. Solved in float64 via :func:`batched_logreg_dual`.
    """
    xd = x.double()
    A, b, _ = batched_logreg_dual(
        xd @ xd.transpose(1, 2), y, num_classes, C=C, fit_intercept=fit_intercept, max_iter=max_iter, tol=tol
    )
    return xd.transpose(1, 2) @ A, b


def _liblinear_predict(xs: Tensor, ys: Tensor, xq: Tensor, C: float) -> Tensor:  # noqa: N803
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    out = []
    for s_, q_ in zip(xs.numpy(), xq.numpy(), strict=True):
        clf = OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear")).fit(s_, ys.numpy())
        out.append(torch.from_numpy(clf.predict(q_)))
    return torch.stack(out).long()


def fewshot_eval(
    feats: Tensor,
    labels: Tensor,
    *,
    n_way: int = 5,
    shots: Sequence[int] = (1, 5),
    n_query: int = 16,
    n_episodes: int = 2000,
    C: float = 1.0,  # noqa: N803 (scikit-learn's name)
    seed: int = 0,
    chunk: int = 250,
    solver: str = "newton",
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Few-shot accuracy (percent) of logistic regression on frozen features (reference §6.2).

    ``solver="newton"`` (default): multinomial ``LogisticRegression(C)`` for all episodes at once
    (:func:`batched_logreg_dual`); ``solver="liblinear"``: the reference's scikit-learn liblinear one-vs-rest
    classifier, one episode at a time (slow, for parity checks). Returns ``{"<N>way<K>shot": {"mean", "ci95",
    "std", "episodes", ...}, "settings": {...}}`` with ``ci95 = 1.96 * std / sqrt(episodes)``. Each shot count
    uses its own seeded episodes (seed + K).
    """
    if solver not in ("newton", "liblinear"):
        raise ValueError(f"unknown few-shot solver {solver!r}; valid: newton, liblinear")
    dev = default_device(device)
    feats = feats.float()
    labels = labels.view(-1).long()
    out: dict[str, Any] = {}
    for k in shots:
        t0 = time.perf_counter()
        sup, qry, _ = sample_episodes(
            labels, n_way=n_way, k_shot=k, n_query=n_query, n_episodes=n_episodes, seed=seed + k
        )
        accs: list[Tensor] = []
        its: list[Tensor] = []
        ys = torch.arange(n_way).repeat_interleave(k)
        yq = torch.arange(n_way).repeat_interleave(n_query)
        bar = tqdm(range(0, n_episodes, chunk), desc=f"few-shot {n_way}w{k}s", disable=not progress, leave=False)
        for s in bar:
            si = sup[s : s + chunk].reshape(-1, n_way * k)
            qi = qry[s : s + chunk].reshape(-1, n_way * n_query)
            # centring by the support mean is exact (the unpenalised intercept absorbs it) and keeps the
            # float32 Gram matrices accurate; the Newton solve runs in float64
            xs = feats[si].to(dev)  # (t, n, d)
            xq = feats[qi].to(dev)
            mu = xs.mean(1, keepdim=True)
            xs, xq = xs - mu, xq - mu
            tn = xs.shape[0]
            if solver == "liblinear":
                pred = _liblinear_predict((xs + mu).cpu(), ys, (xq + mu).cpu(), C).to(dev)
                it = torch.zeros(tn, dtype=torch.long)
            else:
                gram = (xs @ xs.transpose(1, 2)).double()
                A, b, it = batched_logreg_dual(gram, ys.to(dev).expand(tn, -1), n_way, C=C)
                pred = ((xq @ xs.transpose(1, 2)).double() @ A + b[:, None, :]).argmax(-1)
            accs.append((pred == yq.to(dev)).double().mean(-1).cpu() * 100.0)
            its.append(it.cpu())
        acc = torch.cat(accs)
        std = float(acc.std(unbiased=False)) if acc.numel() > 1 else 0.0
        out[f"{n_way}way{k}shot"] = {
            "mean": float(acc.mean()),
            "ci95": 1.96 * std / math.sqrt(acc.numel()),
            "std": std,
            "episodes": int(acc.numel()),
            "newton_iterations_max": int(torch.cat(its).max()),
            "time_s": time.perf_counter() - t0,
        }
    out["settings"] = {
        "n_way": n_way,
        "shots": list(shots),
        "n_query": n_query,
        "n_episodes": n_episodes,
        "C": C,
        "seed": seed,
        "solver": solver,
        "classifier": (
            "multinomial logistic regression (sklearn LogisticRegression(C) objective), batched Newton"
            if solver == "newton"
            else "sklearn liblinear one-vs-rest (reference)"
        ),
        "features": "unnormalised",
    }
    return out
