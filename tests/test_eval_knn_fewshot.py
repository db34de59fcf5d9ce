"""Weighted kNN against a brute-force reference; few-shot episodes and the batched logistic regression."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from augself.eval.fewshot import batched_logreg, batched_logreg_dual, fewshot_eval, sample_episodes
from augself.eval.knn import knn_accuracy, weighted_knn_predict

pytestmark = pytest.mark.usefixtures("one_thread")


def _brute_force_knn(tr, tr_y, te, num_classes, k, t):
    out = []
    for q in te.tolist():
        sims = []
        for j, v in enumerate(tr.tolist()):
            nq = math.sqrt(sum(a * a for a in q))
            nv = math.sqrt(sum(a * a for a in v))
            sims.append((sum(a * b for a, b in zip(q, v, strict=True)) / (nq * nv), j))
        sims.sort(key=lambda s: -s[0])
        scores = [0.0] * num_classes
        for s, j in sims[:k]:
            scores[int(tr_y[j])] += math.exp(s / t)
        out.append(scores)
    return torch.tensor(out)


@pytest.mark.parametrize(("k", "t", "chunk"), [(5, 0.1, 1024), (200, 0.07, 7), (1, 1.0, 3)])
def test_knn_equals_brute_force(k: int, t: float, chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(60, 5, generator=g) * 3, torch.randn(17, 5, generator=g)
    tr_y = torch.randint(0, 4, (60,), generator=g)
    got = weighted_knn_predict(tr, tr_y, te, num_classes=4, k=k, temperature=t, chunk_size=chunk)
    ref = _brute_force_knn(tr, tr_y, te, 4, min(k, 60), t)
    assert got.shape == (17, 4) and got.dtype == torch.float32
    assert torch.allclose(got, ref.float(), rtol=1e-4, atol=1e-6)


def test_knn_accuracy_and_errors() -> None:
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(3, 16, generator=g) * 5
    y = torch.arange(300) % 3
    x = mu[y] + torch.randn(300, 16, generator=g)
    assert knn_accuracy(x[:200], y[:200], x[200:], y[200:], k=20) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="dims"):
        weighted_knn_predict(x, y, x[:, :3], num_classes=3)


# ---------------------------------------------------------------------------------------------------------
# episodes
# ---------------------------------------------------------------------------------------------------------


def _labels() -> torch.Tensor:
    # 8 classes of 30, class 8 with 3 samples (kept for 1-shot, too small for 16 queries), class 9 with 1
    # sample (dropped for 1-shot), a few unlabelled (-1), shuffled
    y = torch.cat([torch.arange(8).repeat_interleave(30), torch.full((3,), 8), torch.tensor([9, -1, -1])])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("k_shot", [1, 5])
def test_episode_counts_and_no_overlap(k_shot: int) -> None:
    labels = _labels()
    sup, qry, cls = sample_episodes(labels, n_way=5, k_shot=k_shot, n_query=16, n_episodes=300, seed=3)
    assert sup.shape == (300, 5, k_shot) and qry.shape == (300, 5, 16) and cls.shape == (300, 5)
    for t in range(300):
        assert len(set(cls[t].tolist())) == 5  # N distinct classes
        assert 9 not in cls[t].tolist()  # <= K samples: dropped
        s, q = sup[t].reshape(-1).tolist(), qry[t].reshape(-1).tolist()
        assert len(set(s)) == len(s)  # support without replacement
        assert set(s).isdisjoint(q)  # no support/query overlap
        for j, c in enumerate(cls[t].tolist()):
            assert (labels[sup[t, j]] == c).all() and (labels[qry[t, j]] == c).all()
            if c != 8:
                assert len(set(qry[t, j].tolist())) == 16  # enough samples: queries without replacement
    if k_shot == 5:
        assert 8 not in cls.unique().tolist()
    else:
        assert 8 in cls.unique().tolist()  # small class kept; queries with replacement
    again = sample_episodes(labels, n_way=5, k_shot=k_shot, n_query=16, n_episodes=300, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((sup, qry, cls), again, strict=True))
    other = sample_episodes(labels, n_way=5, k_shot=k_shot, n_query=16, n_episodes=300, seed=4)
    assert not torch.equal(sup, other[0])


def test_episodes_need_enough_classes() -> None:
    with pytest.raises(ValueError, match="classes"):
        sample_episodes(torch.tensor([0, 0, 1, 1]), n_way=5, k_shot=1)


# ---------------------------------------------------------------------------------------------------------
# batched logistic regression vs scikit-learn
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k_shot", "d"), [(1, 32), (5, 64), (5, 8)])
def _sk_objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """scikit-learn's objective at C = 1: sum CE(x W + b, y) + ||W||^2 / 2 (intercept unpenalised)."""
    return torch.nn.functional.cross_entropy(x @ w + b, y, reduction="sum") + 0.5 * (w * w).sum()


def _grad_and_newton_step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
    """(max|grad|, H^+ grad reshaped like [W; b]): the point minus that step is the minimiser up to O(|step|^2);
    the pseudo-inverse drops the softmax gauge the unpenalised intercept leaves."""
    d, k = w.shape
    f = lambda t: _sk_objective(x, y, t[: d * k].view(d, k), t[d * k :])  # noqa: E731
    flat = torch.cat([w.reshape(-1), b.reshape(-1)]).detach()
    g = torch.autograd.functional.jacobian(f, flat)
    h = torch.autograd.functional.hessian(f, flat)
    return float(g.abs().max()), (torch.linalg.pinv(h, hermitian=True) @ g)[: d * k].view(d, k)


@pytest.mark.parametrize(("k_shot", "d"), [(1, 32), (5, 64), (5, 8)])
def test_batched_logreg_matches_sklearn(k_shot: int, d: int) -> None:
    """Our solution is stationary (float64) and scikit-learn's solves the same objective: its gradient there is
    <= 1 % of |W| (a C off by a factor c would leave |1 - c| |W|); the two differ by what sklearn's own Newton
    step says (x2 for the second-order remainder), whatever sklearn's stopping rule (1.2 stops earlier)."""

    g = torch.Generator().manual_seed(k_shot + d)
    T, N = 2, 5
    x = (torch.randn(T, N * k_shot, d, generator=g) * 3 + torch.randn(T, 1, d, generator=g) * 5).double()
    x[:, :, 0] += torch.arange(N).repeat_interleave(k_shot)  # some class signal, unnormalised features
    y = torch.arange(N).repeat_interleave(k_shot).expand(T, -1)
    xq = x + torch.randn(T, N * k_shot, d, generator=g).double()
    W, b = batched_logreg(x, y, N, C=1.0)
    for t in range(T):
        sk = LogisticRegression(C=1.0, tol=1e-8, max_iter=3000).fit(x[t].numpy(), y[t].numpy())
        w_sk, b_sk = torch.from_numpy(sk.coef_.T).clone(), torch.from_numpy(sk.intercept_).clone()
        g_ours, step_ours = _grad_and_newton_step(x[t], y[t], W[t], b[t])
        g_sk, step_sk = _grad_and_newton_step(x[t], y[t], w_sk, b_sk)
        assert g_ours <= 1e-5 and g_sk <= 1e-2 * float(w_sk.abs().max())
        allowed = 2 * float(step_ours.abs().max() + step_sk.abs().max())
        assert float((W[t] - w_sk).abs().max()) <= allowed + 1e-12
        ours = (xq[t] @ W[t] + b[t]).numpy()
        theirs = sk.decision_function(xq[t].numpy())
        ours, theirs = ours - ours.mean(1, keepdims=True), theirs - theirs.mean(1, keepdims=True)
        assert np.abs(ours - theirs).max() <= 2 * allowed * float(xq[t].abs().sum(1).max()) + 1e-9
        assert (ours.argmax(1) == theirs.argmax(1)).all()


def test_batched_logreg_is_stationary() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 15, 40, generator=g).double() * 10
    y = torch.arange(3).repeat_interleave(5).expand(6, -1)
    A, b, iters = batched_logreg_dual(x @ x.transpose(1, 2), y, 3, C=2.0)
    W = (x.transpose(1, 2) @ A).requires_grad_()
    bb = b.clone().requires_grad_()
    loss = 2.0 * torch.nn.functional.cross_entropy((x @ W + bb[:, None]).reshape(-1, 3), y.reshape(-1), reduction="sum")
    (loss + 0.5 * (W**2).sum()).backward()
    assert W.grad.abs().max() < 1e-5 and bb.grad.abs().max() < 1e-5
    assert int(iters.max()) < 30


def test_fewshot_eval_on_blobs() -> None:
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(12, 64, generator=g) * 0.6
    labels = torch.arange(12).repeat_interleave(40)
    feats = mu[labels] + torch.randn(480, 64, generator=g) * 0.5 + 3.0
    out = fewshot_eval(feats, labels, shots=(1, 5), n_episodes=200, chunk=64, progress=False)
    one, five = out["5way1shot"], out["5way5shot"]
    assert one["episodes"] == 200 and five["episodes"] == 200
    assert 40 < one["mean"] < five["mean"] <= 100
    assert five["ci95"] == pytest.approx(1.96 * five["std"] / math.sqrt(200))
    again = fewshot_eval(feats, labels, shots=(1,), n_episodes=200, chunk=50, progress=False)
    assert again["5way1shot"]["mean"] == pytest.approx(one["mean"])  # seeded, chunking does not matter
    assert out["settings"]["n_query"] == 16


def test_fewshot_liblinear_reference_solver_is_close() -> None:
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(8, 32, generator=g)
    labels = torch.arange(8).repeat_interleave(25)
    feats = mu[labels] + torch.randn(200, 32, generator=g) * 0.8
    a = fewshot_eval(feats, labels, shots=(5,), n_episodes=40, progress=False)["5way5shot"]["mean"]
    b = fewshot_eval(feats, labels, shots=(5,), n_episodes=40, solver="liblinear", progress=False)
    assert abs(a - b["5way5shot"]["mean"]) < 3.0
