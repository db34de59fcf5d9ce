"""Multinomial logistic regression by full-batch L-BFGS, the solver behind :func:`augself.eval.linear.linear_eval`.

Objective ``mean CE + (wd / N) ||theta||^2`` on ``[x, 1]`` (the reference objective of Lee et al., NeurIPS
2021, reference §6.1 and quirk Q6, divided by N: same minimiser).

* L-BFGS (torch's algorithm: same two-loop recursion, strong-Wolfe line search and constants, re-implemented
  here) runs in preconditioned coordinates ``theta = V D Z`` (``[x, 1]^T [x, 1] / N = V diag(s) V^T``,
  ``D = (s / C + 2 wd / N)^(-1/2)``), an exact reparametrisation: the objective, its minimiser and the stopping
  rule (on the gradient in theta) are unchanged, but unnormalised, off-centre features no longer make the
  problem ill-conditioned. Along the grid, theta and L-BFGS's curvature pairs are carried over (the pairs
  corrected exactly for the new ``wd``: the penalty is quadratic). ``precondition=False`` runs plain L-BFGS
  on theta.
* Loss and gradient are computed in closed form (no autograd), in float32 by default, on the GPU when one is
  available. Logits are linear in the parameters, so a line search costs one matmul for the direction and
  elementwise work per trial step; the gradient matmul is formed at accepted points only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["PRECOND_CURVATURE", "LogRegProblem", "fit_logreg_lbfgs", "predict", "with_bias"]


def with_bias(x: Tensor) -> Tensor:
    """[x, 1]: the bias becomes the last row of theta (penalised like the weights, as in the reference)."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


#: Curvature constant ``c`` of the preconditioner ``(c xa^T xa / N + 2 wd / N)^(-1/2)``; None: ``1 / C``, the
#: softmax Hessian's scale at uniform probabilities (C classes). It shapes the preconditioner only, never the
#: minimiser (measured on the benchmark: 1/C beat 0.25 and 1.0 for 10 and 100 classes).
PRECOND_CURVATURE: float | None = None


def _gram_eigh(xa: Tensor, chunk: int = 65536) -> tuple[Tensor, Tensor]:
    """Eigenvalues (clamped >= 0, ascending) and eigenvectors of ``xa^T xa / N``, accumulated in float64."""
    p = xa.shape[1]
    g = torch.zeros(p, p, dtype=torch.float64, device=xa.device)
    for i in range(0, xa.shape[0], chunk):
        b = xa[i : i + chunk].double()
        g.addmm_(b.t(), b)
    evals, evecs = torch.linalg.eigh(g.div_(xa.shape[0]))
    return evals.clamp_(min=0.0), evecs


def _cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, bounds=None) -> float:
    """Minimiser of the cubic through two points with slopes, clipped to ``bounds`` (torch's
    ``_cubic_interpolate``)."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(pos, lo), hi)


def _strong_wolfe_1d(
    phi: Callable[[float], tuple[float, float]],
    f0: float,
    gtd0: float,
    t: float,
    d_norm: float,
    max_ls: int,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
) -> tuple[float, float, int]:
    """torch's strong-Wolfe line search (``torch.optim.lbfgs._strong_wolfe``, same logic and constants) on
    ``phi(t) = (f, df/dt)`` along the direction, so no full gradient is needed at trial points. Returns ``(t,
    f(t), evaluations)``."""
    f_new, gtd_new = phi(t)
    evals, ls_iter, done = 1, 0, False
    t_prev, f_prev, gtd_prev = 0.0, f0, gtd0
    br, bf, bg = [0.0, t], [f0, f_new], [gtd0, gtd_new]
    while ls_iter < max_ls:
        if f_new > f0 + c1 * t * gtd0 or (ls_iter > 1 and f_new >= f_prev):
            br, bf, bg = [t_prev, t], [f_prev, f_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd0:
            br, bf, bg, done = [t], [f_new], [gtd_new], True
            break
        if gtd_new >= 0:
            br, bf, bg = [t_prev, t], [f_prev, f_new], [gtd_prev, gtd_new]
            break
        tmp = t
        t = _cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, gtd_prev = tmp, f_new, gtd_new
        f_new, gtd_new = phi(t)
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        br, bf, bg = [0.0, t], [f0, f_new], [gtd0, gtd_new]
    insuf_progress = False
    lo, hi = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(br[1] - br[0]) * d_norm < tolerance_change:
            break
        t = _cubic_min(br[0], bf[0], bg[0], br[1], bf[1], bg[1])
        eps = 0.1 * (max(br) - min(br))
        if min(max(br) - t, t - min(br)) < eps:
            if insuf_progress or t >= max(br) or t <= min(br):
                t = max(br) - eps if abs(t - max(br)) < abs(t - min(br)) else min(br) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, gtd_new = phi(t)
        evals += 1
        ls_iter += 1
        if f_new > f0 + c1 * t * gtd0 or f_new >= bf[lo]:
            br[hi], bf[hi], bg[hi] = t, f_new, gtd_new
            lo, hi = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd0:
                done = True
            elif gtd_new * (br[hi] - br[lo]) >= 0:
                br[hi], bf[hi], bg[hi] = br[lo], bf[lo], bg[lo]
            br[lo], bf[lo], bg[lo] = t, f_new, gtd_new
    return br[lo], bf[lo], evals


class _Objective(Protocol):
    """What :func:`_lbfgs` needs: the gradient at the current point, a 1-D restriction along a direction,
    and a move along it (returning the new gradient)."""

    def start(self) -> tuple[float, Tensor]: ...
    def line(self, d: Tensor) -> Callable[[float], tuple[float, float]]: ...
    def move(self, t: float) -> Tensor: ...


def _lbfgs(
    obj: _Objective,
    *,
    converged: Callable[[Tensor], bool],
    max_iter: int,
    history: list[tuple[Tensor, Tensor]],
    history_size: int,
    first_step: float | None,
) -> tuple[int, int]:
    """L-BFGS with strong-Wolfe line search (``torch.optim.LBFGS``'s algorithm and constants); stops when
    ``converged(grad)``, after ``max_iter`` iterations or ``2 max_iter`` evaluations.

    ``history``: curvature pairs ``(s, y)`` to start from (updated in place; torch starts empty).
    ``first_step``: the trial step of an iteration without history (None: torch's ``min(1, 1 / |g|_1)``).
    Returns ``(iterations, evaluations)``.
    """
    f, g = obj.start()
    evals, max_eval = 1, 2 * max_iter
    if converged(g):
        return 0, evals
    hist = [(s, y, 1.0 / float(y.dot(s))) for s, y in history[-history_size:]]
    h_diag = float(hist[-1][0].dot(hist[-1][1]) / hist[-1][1].dot(hist[-1][1])) if hist else 1.0
    it = 0
    while it < max_iter and evals < max_eval:
        it += 1
        q = g.neg()
        al = [0.0] * len(hist)
        for i in range(len(hist) - 1, -1, -1):
            al[i] = float(hist[i][0].dot(q)) * hist[i][2]
            q.add_(hist[i][1], alpha=-al[i])
        d = q.mul_(h_diag)
        for i, (s, y, r) in enumerate(hist):
            d.add_(s, alpha=al[i] - float(y.dot(d)) * r)
        gtd = float(g.dot(d))
        if gtd >= 0:  # not a descent direction (round-off at the optimum)
            break
        t = first_step if first_step is not None else min(1.0, 1.0 / float(g.abs().sum()))
        t = 1.0 if hist else t
        t, f, ls = _strong_wolfe_1d(obj.line(d), f, gtd, t, float(d.abs().max()), max_eval - evals)
        evals += ls
        if t == 0.0:  # no progress along a descent direction: round-off level
            break
        g_new = obj.move(t)
        s = d.mul_(t)
        y = g_new - g
        ys = float(y.dot(s))
        if ys > 1e-10:
            if len(hist) == history_size:
                hist.pop(0)
            hist.append((s, y, 1.0 / ys))
            h_diag = ys / float(y.dot(y))
        g = g_new
        if converged(g):
            break
    history[:] = [(s, y) for s, y, _ in hist]
    return it, evals


class _Softmax:
    """The objective ``mean CE(x b, y) + lam (||b||^2 - ||vb b||^2)`` as a function of ``z`` (b = D z), in
    the form :func:`LogRegProblem` hands to :func:`_lbfgs`. Logits are linear in z, so a line search needs one
    matmul for the direction's logits and then only elementwise work per trial step; the gradient (a second
    matmul) is formed at accepted points only. Logits are recomputed from scratch every ``refresh`` moves so
    float round-off cannot accumulate."""

    refresh = 10

    def __init__(self, prob: LogRegProblem, lam: float, dsc: Tensor, z: Tensor) -> None:
        self.pr, self.lam, self.dsc = prob, lam, dsc
        self.z = z
        self.b = z.view(prob.p, prob.k) * dsc
        self.moves = 0

    def _pen_dot(self, u: Tensor, w: Tensor) -> float:
        vb = self.pr.vb
        out = float((u * w).sum())
        return out - float((vb @ u * (vb @ w)).sum()) if vb is not None else out

    def _grad(self, prob: Tensor) -> Tensor:
        pr = self.pr
        prob[pr.y, pr.rows] -= 1.0
        gb = torch.mm(prob, pr.x).t().div_(pr.n).add_(self.b, alpha=2.0 * self.lam)
        if pr.vb is not None:
            gb.addmm_(pr.vb.t(), pr.vb @ self.b, alpha=-2.0 * self.lam)
        return (gb * self.dsc).reshape(-1)

    @staticmethod
    def _softmax(logits: Tensor) -> tuple[Tensor, Tensor]:
        """(probabilities (C, N), logsumexp (1, N)); class-major logits."""
        m = logits.amax(0, keepdim=True)
        e = (logits - m).exp_()
        tot = e.sum(0, keepdim=True)
        return e.div_(tot), tot.log_().add_(m)

    def start(self) -> tuple[float, Tensor]:
        pr = self.pr
        self.logits = torch.mm(self.b.t(), pr.x.t())  # (C, N): faster than x b on CPU BLAS for a tall x
        prob, lse = self._softmax(self.logits)
        loss = float(lse.sum() - self.logits[pr.y, pr.rows].sum()) / pr.n + self.lam * self._pen_dot(self.b, self.b)
        return loss, self._grad(prob)

    def line(self, d: Tensor) -> Callable[[float], tuple[float, float]]:
        pr, lam = self.pr, self.lam
        self.d = d
        self.db = db = d.view(pr.p, pr.k) * self.dsc
        self.ld = ld = torch.mm(db.t(), pr.x.t())
        l0_y, ld_y = float(self.logits[pr.y, pr.rows].sum()), float(ld[pr.y, pr.rows].sum())
        bb, bd, dd = self._pen_dot(self.b, self.b), self._pen_dot(self.b, db), self._pen_dot(db, db)
        n, logits = pr.n, self.logits

        def phi(t: float) -> tuple[float, float]:
            prob, lse = self._softmax(torch.add(logits, ld, alpha=t))
            self._last = (t, prob)
            f = (float(lse.sum()) - l0_y - t * ld_y) / n + lam * (bb + 2 * t * bd + t * t * dd)
            df = (float((prob * ld).sum()) - ld_y) / n + lam * (2 * bd + 2 * t * dd)
            return f, df

        return phi

    def move(self, t: float) -> Tensor:
        pr = self.pr
        self.z = self.z.add(self.d, alpha=t)
        self.b = self.b.add(self.db, alpha=t)
        self.moves += 1
        if self.moves % self.refresh == 0:
            self.logits = torch.mm(self.b.t(), pr.x.t())
            prob = self._softmax(self.logits)[0]
        else:
            self.logits = self.logits.add(self.ld, alpha=t)
            prob = self._last[1] if self._last[0] == t else self._softmax(self.logits)[0]
        return self._grad(prob)


class LogRegProblem:
    """``mean CE(xa theta, y) + lam ||mask * theta||^2`` on fixed data, minimised by L-BFGS in preconditioned
    coordinates (an exact reparametrisation: the objective, its minimiser and the stopping rule are unchanged).

    With ``xa^T xa / N = V diag(s) V^T`` (once per data set), ``theta = V D Z`` with ``D = (c s + 2 lam)^-1/2``
    (:data:`PRECOND_CURVATURE` = c): the data term (Hessian <~ c xa^T xa / N per class) and the penalty both
    get Hessians near identity, so L-BFGS needs far fewer iterations on unnormalised, off-centre features.
    The data are stored rotated (``xa V``), so an evaluation is still two skinny matmuls. ``D`` depends on
    ``lam``: a warm start keeps theta (Z is recomputed), and the curvature pairs of the previous fit are
    carried over exactly (the penalty is quadratic: ``y += 2 (lam' - lam) M s``, then rescaled to the new
    coordinates). Stopping rule as before: ``max |grad_theta| <= tol`` of the mean objective,
    ``grad_theta = V D^-1 grad_Z``. ``precondition=False`` runs the same L-BFGS on theta itself.
    """

    def __init__(self, xa: Tensor, y: Tensor, num_classes: int, *, penalize_bias: bool, precondition: bool):
        self.n, self.p = xa.shape
        self.k = int(num_classes)
        self.y = y.to(xa.device).long().view(-1)
        self.rows = torch.arange(self.n, device=xa.device)
        self.v: Tensor | None = None
        self.x = xa
        if precondition:
            s, v = _gram_eigh(xa)
            self.s, self.v = s.to(xa.dtype), v.to(xa.dtype)
            self.x = torch.mm(xa, self.v)  # xa V
        # the bias row of theta as a function of the basis coordinates b (theta = V b): unpenalised bias only
        self.vb: Tensor | None = None
        if not penalize_bias:
            eye_last = torch.eye(self.p, dtype=xa.dtype, device=xa.device)[-1:]
            self.vb = self.v[-1:].clone() if self.v is not None else eye_last
        self._hist: list[tuple[Tensor, Tensor]] = []  # curvature pairs in basis coordinates b
        self._lam: float | None = None

    def _scale(self, lam: float) -> Tensor:
        """D (p, 1): the diagonal of the preconditioner in the basis coordinates (ones without one)."""
        if self.v is None:
            return self.x.new_ones(self.p, 1)
        c = PRECOND_CURVATURE if PRECOND_CURVATURE is not None else 1.0 / self.k
        return (self.s * c + 2.0 * lam).rsqrt_().view(self.p, 1)

    def fit(
        self,
        wd: float,
        init: Tensor | None,
        *,
        max_iter: int,
        tol: float,
        history_size: int,
        keep_history: bool = False,
    ) -> tuple[Tensor, int]:
        """(theta (p, C), iterations) for weight decay ``wd``, warm-started from ``init``; ``keep_history``
        starts from the curvature pairs of this object's previous fit (exactly corrected for the new wd)."""
        p, k = self.p, self.k
        lam = float(wd) / self.n
        x, vb, v = self.x, self.vb, self.v
        dsc = self._scale(lam)
        theta0 = init.detach().to(x).view(p, k) if init is not None else x.new_zeros(p, k)
        z0 = ((v.t() @ theta0) if v is not None else theta0.clone()).div_(dsc).reshape(-1)

        def converged(gz: Tensor) -> bool:
            gb = gz.view(p, k) / dsc
            g_theta = torch.mm(v, gb) if v is not None else gb
            return bool(g_theta.abs().max() <= tol)

        history: list[tuple[Tensor, Tensor]] = []
        if keep_history and self._lam is not None:
            dlam = 2.0 * (lam - self._lam)
            for sb, yb in self._hist:
                yb = yb + dlam * sb
                if vb is not None:
                    yb = yb - dlam * vb.t() @ (vb @ sb)
                sz, yz = (sb / dsc).reshape(-1), (yb * dsc).reshape(-1)
                if float(sz.dot(yz)) > 1e-10:
                    history.append((sz, yz))
        with torch.no_grad():
            obj = _Softmax(self, lam, dsc, z0)
            iters, _ = _lbfgs(
                obj,
                converged=converged,
                max_iter=int(max_iter),
                history=history,
                history_size=int(history_size),
                first_step=1.0 if v is not None else None,
            )
            self._hist = [(sz.view(p, k) * dsc, yz.view(p, k) / dsc) for sz, yz in history]
            self._lam = lam
            theta = torch.mm(v, obj.b) if v is not None else obj.b.clone()
        return theta, iters


def fit_logreg_lbfgs(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    wd: float,
    *,
    init: Tensor | None = None,
    penalize_bias: bool = True,
    max_iter: int = 1000,
    tol: float = 1e-5,
    history_size: int = 20,
    augmented: bool = False,
    precondition: bool = True,
) -> tuple[Tensor, int]:
    """Minimise ``sum CE(x W + b, y) + wd * ||theta||^2`` (theta = [W; b], reference Q6) with L-BFGS.

    ``x``: (N, d) features, or (N, d + 1) already ending in a ones column when ``augmented``. Solved on
    ``x``'s device and dtype as ``mean CE + (wd / N) ||theta||^2`` (same minimiser) until ``max |grad| <= tol``
    of that objective. ``penalize_bias=False`` leaves the bias out of the penalty (scikit-learn's convention).
    ``precondition`` (default) runs L-BFGS in the coordinates of :class:`LogRegProblem` (same minimiser, far fewer
    iterations on unnormalised features). Returns ``(theta (d + 1, C), iterations)``; ``init`` warm-starts.
    """
    xa = x if augmented else with_bias(x)
    prob = LogRegProblem(xa, y, num_classes, penalize_bias=penalize_bias, precondition=precondition)
    return prob.fit(wd, init, max_iter=max_iter, tol=tol, history_size=history_size)


def predict(theta: Tensor, xa: Tensor, chunk: int = 65536) -> Tensor:
    return torch.cat([torch.mm(theta.t(), xa[i : i + chunk].t()).argmax(0) for i in range(0, xa.shape[0], chunk)])
