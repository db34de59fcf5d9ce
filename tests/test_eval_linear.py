"""Linear evaluation (L-BFGS protocol), feature extraction and the feature cache, on generated data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import Dataset

from augself.eval.features import FeatureCache, extract_features, normalise_images
from augself.eval.linear import (
    WD_GRID,
    accuracy_metrics,
    fit_logreg_lbfgs,
    linear_eval,
    seeded_split,
    sgd_probe,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n: int, d: int, classes: int, sep: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(classes, d, generator=g) * sep
    y = torch.arange(n) % classes
    return mu[y] + torch.randn(n, d, generator=g), y


def test_grid_is_the_papers() -> None:
    assert len(WD_GRID) == 45
    assert WD_GRID[0] == pytest.approx(1e-6) and WD_GRID[-1] == pytest.approx(1e5)
    assert np.allclose(np.diff(np.log10(WD_GRID)), 11 / 44)


@pytest.mark.parametrize("wd", [1e-2, 1.0, 50.0])
def test_matches_sklearn_bias_penalised(wd: float) -> None:
    """Reference objective sum CE + wd ||[W; b]||^2 == sklearn C = 1/(2 wd), fit_intercept=False on [x, 1]: ours
    meets its stopping rule (tol above the float64 round-off floor); sklearn's gradient on our objective is <= 1 % of
    |theta| (a C off by a factor c leaves |1 - c| |theta|; sklearn 1.2 stops early), and both are the same minimiser
    to second order. The penalised bias fixes the gauge: sum_k g_jk = 2 wd / N sum_k theta_jk."""

    x, y = _blobs(600, 8, 4, 1.0, seed=1)
    x = (x * 3 + 2).double()  # unnormalised, off-centre features
    tol = _attainable_tol(x, 4, wd)
    theta, _ = fit_logreg_lbfgs(x, y, 4, wd, tol=tol, max_iter=5000)
    xa = np.hstack([x.numpy(), np.ones((600, 1))])
    sk = LogisticRegression(C=1 / (2 * wd), fit_intercept=False, tol=1e-10, max_iter=5000).fit(xa, y.numpy())
    ref = torch.from_numpy(sk.coef_.T).clone()
    assert _objective_and_grad(x, y, theta, wd)[1].abs().max() <= tol + _gradient_slack(x)
    assert _objective_and_grad(x, y, ref, wd)[1].abs().max() <= 1e-2 * ref.abs().max()  # same objective
    _same_minimiser(x, y, theta, ref, wd)
    assert theta.sum(1).abs().max() <= 4 * len(x) * (tol + _gradient_slack(x)) / (2 * wd)


@pytest.mark.parametrize("wd", [1e-2, 5.0])
def test_matches_sklearn_bias_unpenalised(wd: float) -> None:
    """penalize_bias=False == sklearn's intercept convention: same stopping rule and minimiser as above, the
    intercepts compared after removing the softmax gauge (centred logits)."""

    x, y = _blobs(500, 6, 3, 1.0, seed=2)
    x = x.double()
    tol = _attainable_tol(x, 3, wd)
    theta, _ = fit_logreg_lbfgs(x, y, 3, wd, penalize_bias=False, tol=tol, max_iter=5000)
    sk = LogisticRegression(C=1 / (2 * wd), tol=1e-10, max_iter=5000).fit(x.numpy(), y.numpy())
    ref = torch.cat([torch.from_numpy(sk.coef_.T), torch.from_numpy(sk.intercept_)[None]])
    assert _objective_and_grad(x, y, theta, wd, penalize_bias=False)[1].abs().max() <= tol + _gradient_slack(x)
    assert _objective_and_grad(x, y, ref, wd, penalize_bias=False)[1].abs().max() <= 1e-2 * ref.abs().max()
    _same_minimiser(x, y, theta, ref, wd, penalize_bias=False)


def test_float32_grid_search_matches_sklearn_accuracy() -> None:
    """Full protocol vs sklearn over a coarse grid (same selection rule, warm start): accuracy within 0.5 points
    (2 of 400 val, 5 of 1000 test samples): a float32 fit at tol 1e-5 moves logits by < 1e-2 (Newton step), so
    only samples whose top-2 logit margin under sklearn is below that can flip; checked to be that few here."""

    x, y = _blobs(1600, 16, 5, 0.5, seed=3)
    xt, yt = _blobs(1000, 16, 5, 0.5, seed=3)
    xt, yt = xt[:1000], yt[:1000]
    grid = WD_GRID[::6]
    r = linear_eval(x[:1200], y[:1200], xt, yt, val_feats=x[1200:], val_labels=y[1200:], wd_grid=grid, progress=False)
    xa = lambda z: np.hstack([z.double().numpy(), np.ones((len(z), 1))])  # noqa: E731
    best = (-1.0, None, None)
    for wd in grid:
        sk = LogisticRegression(C=1 / (2 * wd), fit_intercept=False, tol=1e-8, max_iter=5000)
        acc = (sk.fit(xa(x[:1200]), y[:1200].numpy()).predict(xa(x[1200:])) == y[1200:].numpy()).mean() * 100
        if acc > best[0]:
            best = (acc, wd, sk)
    assert r.val_best == pytest.approx(best[0], abs=0.5)
    sk = LogisticRegression(C=1 / (2 * best[1]), fit_intercept=False, tol=1e-8, max_iter=5000).fit(xa(x), y.numpy())
    sk_test = (sk.predict(xa(xt)) == yt.numpy()).mean() * 100
    assert r.test_top1 == pytest.approx(sk_test, abs=0.5)
    for model, feats, allowed in ((best[2], x[1200:], 2), (sk, xt, 5)):  # the allowance covers every possible flip
        top2 = np.sort(model.decision_function(xa(feats)), 1)[:, -2:]
        assert ((top2[:, 1] - top2[:, 0]) < 1e-2).sum() <= allowed


def test_reaches_bayes_accuracy() -> None:
    """4 classes at the corners (±1, ±1) with unit noise (+ 14 pure-noise dims): Bayes accuracy = Phi(1)^2."""
    g = torch.Generator().manual_seed(4)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 4
        corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        x = torch.randn(n, 16, generator=g)
        x[:, :2] += corners[y]
        return x * 2.0 + 5.0, y  # unnormalised affine features: the protocol must cope

    (x, y), (xt, yt) = make(4000), make(4000)
    r = linear_eval(x, y, xt, yt, seed=0, progress=False)  # seeded val split of train
    bayes = 100 * (0.5 * (1 + math.erf(1 / math.sqrt(2)))) ** 2  # 70.79
    assert abs(r.test_top1 - bayes) < 2.5, (r.test_top1, bayes)  # 3.5 binomial standard errors at n = 4000
    assert r.test_class_avg == pytest.approx(r.test_top1, abs=1e-3)  # balanced classes: equal up to float32
    assert r.num_val == 400 and r.num_train == 3600
    assert len(r.val_curve) == 45 and len(r.iterations) == 45
    json.dumps(r.to_dict())  # serialisable


def test_selects_heavy_wd_for_noise_and_light_for_separable() -> None:
    g = torch.Generator().manual_seed(5)

    def noise(n: int) -> tuple[torch.Tensor, torch.Tensor]:  # labels independent of the features, 70/30 prior
        return torch.randn(n, 50, generator=g), (torch.rand(n, generator=g) < 0.7).long()

    (a, b), (c, e), (f, h) = noise(100), noise(1000), noise(1000)
    r = linear_eval(a, b, f, h, val_feats=c, val_labels=e, progress=False)
    assert r.best_wd >= 1.0, r.best_wd

    def separable(n: int) -> tuple[torch.Tensor, torch.Tensor]:  # one small-scale separating dim + big noise
        y = torch.arange(n) % 2
        x = torch.randn(n, 10, generator=g) * 5
        x[:, 0] = (2 * y - 1) * 0.2 + 0.02 * torch.randn(n, generator=g)
        return x, y

    (a, b), (c, e), (f, h) = separable(1000), separable(500), separable(1000)
    r = linear_eval(a, b, f, h, val_feats=c, val_labels=e, progress=False)
    assert r.best_wd <= 1e-2 and r.test_top1 >= 99.0
    assert r.val_curve[-1]["top1"] < 80  # heavy wd shrinks to the (noisy) class-mean direction


def test_seeded_split_is_reproducible() -> None:
    a = seeded_split(100, 0.1, seed=3)
    b = seeded_split(100, 0.1, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert len(a[1]) == 10 and set(a[0].tolist()).isdisjoint(a[1].tolist())
    assert not torch.equal(a[1], seeded_split(100, 0.1, seed=4)[1])


def test_accuracy_metrics_class_avg() -> None:
    labels = torch.tensor([0] * 8 + [1] * 2)
    pred = torch.zeros(10, dtype=torch.long)
    m = accuracy_metrics(pred, labels)
    assert m["top1"] == pytest.approx(80.0) and m["class-avg"] == pytest.approx(50.0)


def test_bad_metric_raises() -> None:
    x, y = _blobs(20, 2, 2, 1.0, 0)
    with pytest.raises(ValueError, match="metric"):
        linear_eval(x, y, x, y, metric="top5", progress=False)


# --------------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------------


class _Images(Dataset):
    def __init__(self, n: int = 10, size: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
        self.y = torch.arange(n) % 3

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.x[i],
            "label": int(self.y[i]),
            "source_crop": torch.tensor([0.0, 0.0, 1.0, 1.0]),
        }


class _MeanPool(nn.Module):
    dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)  # eval mode must use running stats (identity at init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.mean((2, 3)))


def test_extract_features_normalises_and_restores_mode() -> None:
    """Tolerances: eval-mode BN at init scales by 1 / sqrt(1 + 1e-5) (rtol 1e-5), and a float32 mean of 64
    normalised pixels (|v| <= 3) is exact to 64 eps 3 in any summation order (atol)."""
    ds = _Images()
    atol = 64 * torch.finfo(torch.float32).eps * 3
    net = _MeanPool().train()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    f, y = extract_features(net, ds, batch_size=4, device="cpu", mean=mean, std=std, progress=False)
    ref = normalise_images(ds.x, mean, std).mean((2, 3))
    assert f.dtype == torch.float32 and f.shape == (10, 3) and y.dtype == torch.long
    assert torch.allclose(f, ref, rtol=1e-5, atol=atol) and torch.equal(y, ds.y)
    assert net.training  # mode restored
    assert torch.equal(net.bn.running_mean, torch.zeros(3))  # eval mode during extraction
    f2, _ = extract_features(
        net, ds, batch_size=3, device="cpu", mean=mean, std=std, progress=False, channels_last=True
    )
    assert torch.allclose(f, f2, rtol=0, atol=2 * atol)  # another batch split and memory layout


def test_feature_cache(tmp_path) -> None:
    ds = _Images()
    net = _MeanPool()
    cache = FeatureCache(tmp_path)
    kw = dict(name="toy", split="test", size=8, mean=(0.5,) * 3, std=(0.25,) * 3, device="cpu", progress=False)
    f1, _ = cache.get_or_extract(net, ds, **kw)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    f2, _ = cache.get_or_extract(net, _Images(seed=1), **kw)  # same key -> cached (not recomputed)
    assert torch.equal(f1, f2)
    cache.get_or_extract(net, ds, **{**kw, "split": "train"})
    cache.get_or_extract(net, ds, **{**kw, "mean": (0.4,) * 3})
    with torch.no_grad():
        net.bn.bias += 1.0  # different weights -> different key
    f3, _ = cache.get_or_extract(net, ds, **kw)
    assert len(list(tmp_path.glob("*.pt"))) == 4
    assert torch.allclose(f3, f1 + 1.0, rtol=0, atol=1e-5)  # one float32 add at |f| + 1 <= 4: 5e-7 rounding


@pytest.mark.parametrize("augment", [False, True])
def test_sgd_probe_learns(augment: bool) -> None:
    class Colour(Dataset):  # class = dominant colour channel: robust to crops and flips
        def __init__(self, n: int, seed: int) -> None:
            g = torch.Generator().manual_seed(seed)
            self.y = torch.arange(n) % 3
            x = torch.randint(0, 60, (n, 3, 8, 8), generator=g)
            x[torch.arange(n), self.y] += 150
            self.x = x.to(torch.uint8)

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict:
            return {"image": self.x[i], "label": int(self.y[i])}

    net = _MeanPool()
    out = sgd_probe(
        net,
        Colour(96, 0),
        Colour(60, 1),
        num_classes=3,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        epochs=15,
        batch_size=32,
        lr=0.5,
        augment=augment,
        device="cpu",
        progress=False,
    )
    assert out["test"]["top1"] >= 95.0
    assert out["train_loss"][-1] < out["train_loss"][0]


def _ill_conditioned(n: int = 500, seed: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Features on scales 0.1 .. 10 with a large offset (+20): [x, 1]^T [x, 1] has condition number ~1e7."""
    x, y = _blobs(n, 8, 3, 1.0, seed=seed)
    return (x * torch.logspace(-1, 1, 8) + 20.0).double(), y


def _objective(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, wd: float, penalize_bias: bool = True):
    """The reference objective / N on [x, 1] (``penalize_bias=False``: theta's last row is not penalised)."""
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    pen = theta if penalize_bias else theta[:-1]
    return (torch.nn.functional.cross_entropy(xa @ theta, y, reduction="sum") + wd * (pen * pen).sum()) / len(x)


def _objective_and_grad(
    x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, wd: float, penalize_bias: bool = True
) -> tuple[float, torch.Tensor]:
    """The reference objective / N and its gradient, by autograd (independent of the solver's closed form)."""
    th = theta.clone().requires_grad_(True)
    loss = _objective(x, y, th, wd, penalize_bias)
    loss.backward()
    return float(loss.detach()), th.grad


def _newton_step(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, wd: float, penalize_bias: bool = True):
    """H^+ g at theta (autograd Hessian; the pseudo-inverse drops the softmax gauge an unpenalised bias leaves):
    theta - step is the minimiser up to O(|step|^2), and g . step / 2 is the objective's excess to that order."""
    flat = theta.detach().reshape(-1)
    h = torch.autograd.functional.hessian(lambda t: _objective(x, y, t.view_as(theta), wd, penalize_bias), flat)
    g = _objective_and_grad(x, y, theta, wd, penalize_bias)[1].reshape(-1)
    return (torch.linalg.pinv(h, hermitian=True) @ g).view_as(theta)


def _centred_logits(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """[x, 1] theta minus its mean over classes: the softmax is invariant to that shift (the bias gauge)."""
    z = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1) @ theta
    return z - z.mean(1, keepdim=True)


def _gradient_slack(x: torch.Tensor) -> float:
    """Bound on the round-off difference between two evaluations (solver's closed form vs autograd) of the mean
    gradient, a sum over N samples of (p - onehot) [x, 1] / N with |p - onehot| <= 1: N eps max|[x, 1]| each."""
    return len(x) * torch.finfo(x.dtype).eps * max(1.0, float(x.abs().max()))


def _attainable_tol(x: torch.Tensor, num_classes: int, wd: float, margin: float = 30.0) -> float:
    """``margin`` x the max|grad| below which a line search can stop seeing decrease in x's dtype: a step along the
    stiffest direction (Hessian eigenvalue <= L = lambda_max([x,1]^T [x,1] / N) / 2 + 2 wd / N) gains g^2 / 2L,
    which must exceed f's rounding eps f, f <= log C: g_floor = sqrt(2 L eps log C)."""
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    lam = float(torch.linalg.eigvalsh(xa.T @ xa / len(x))[-1]) / 2 + 2 * wd / len(x)
    return margin * math.sqrt(2 * lam * torch.finfo(x.dtype).eps * math.log(num_classes))


def _same_minimiser(
    x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, wd: float, penalize_bias: bool = True
) -> None:
    """a and b minimise the same objective: their centred logits differ by at most what their Newton steps allow
    (twice, for the O(|step|^2) remainder), and so do their objective values (g . step / 2 each)."""
    sa, sb = _newton_step(x, y, a, wd, penalize_bias), _newton_step(x, y, b, wd, penalize_bias)
    gap = (_centred_logits(x, a) - _centred_logits(x, b)).abs().max().item()
    allowed = 2 * (_centred_logits(x, sa).abs().max().item() + _centred_logits(x, sb).abs().max().item())
    assert gap <= allowed + _gradient_slack(x), (gap, allowed)
    (fa, ga), (fb, gb) = (_objective_and_grad(x, y, t, wd, penalize_bias) for t in (a, b))
    excess = float((ga * sa).sum() + (gb * sb).sum()) / 2
    assert abs(fa - fb) <= 2 * excess + 4 * torch.finfo(x.dtype).eps * max(abs(fa), 1.0), (fa, fb, excess)


@pytest.mark.parametrize("wd", [1e-3, 10.0])
def test_preconditioned_solver_same_minimiser_fewer_iterations(wd: float) -> None:
    """Both fits meet the stopping rule max|grad| <= tol (checked by autograd, up to the float64 gradient round-off)
    with tol 30x the float64 round-off floor, so plain L-BFGS on a cond-1e7 problem gets there by its rule, not a
    line-search stall; same minimiser to second order; plain L-BFGS needs O(sqrt(cond)) iterations, 5x is loose."""
    x, y = _ill_conditioned()
    tol = _attainable_tol(x, 3, wd)
    pre, it_pre = fit_logreg_lbfgs(x, y, 3, wd, tol=tol, max_iter=5000)
    plain, it_plain = fit_logreg_lbfgs(x, y, 3, wd, tol=tol, max_iter=5000, precondition=False)
    for theta in (pre, plain):
        assert _objective_and_grad(x, y, theta, wd)[1].abs().max() <= tol + _gradient_slack(x)
    _same_minimiser(x, y, pre, plain, wd)
    assert it_pre * 5 <= it_plain, (it_pre, it_plain)


def test_history_carried_across_wd_is_exact() -> None:
    """Warm-started fits along a grid (curvature pairs carried over, corrected for the new wd) meet the stopping
    rule (tol 30x the float64 round-off floor, autograd check up to gradient round-off) and land on the same
    minimisers as cold fits (to second order); the bias-unpenalised variant too."""
    from augself.eval.logreg_lbfgs import LogRegProblem

    x, y = _ill_conditioned(400, seed=7)
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    for penalize_bias in (True, False):
        prob = LogRegProblem(xa, y, 3, penalize_bias=penalize_bias, precondition=True)
        theta = None
        for wd in (1e-2, 1.0, 100.0, 3.0):  # the last one goes down: pairs with s^T y <= 0 are dropped
            tol = _attainable_tol(x, 3, wd)
            theta, _ = prob.fit(wd, theta, tol=tol, max_iter=5000, history_size=20, keep_history=True)
            cold, _ = fit_logreg_lbfgs(x, y, 3, wd, penalize_bias=penalize_bias, tol=tol, max_iter=5000)
            for t in (theta, cold):
                assert _objective_and_grad(x, y, t, wd, penalize_bias)[1].abs().max() <= tol + _gradient_slack(x)
            _same_minimiser(x, y, theta, cold, wd, penalize_bias)
