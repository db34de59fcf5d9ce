"""SSL methods: losses against naive references, short training runs, gradients, momentum encoders."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.methods import (
    METHODS,
    MethodOutput,
    barlow_twins_loss,
    build_method,
    byol_loss,
    ema_update,
    moco_loss,
    momentum_at,
    simclr_loss,
    simsiam_loss,
    sinkhorn,
    supervised_loss,
    swav_loss,
    vicreg_loss,
)
from augself.models import build_backbone

TINY_CNN = {"widths": (8, 16, 16, 32)}


pytestmark = pytest.mark.usefixtures("one_thread")


SMALL: dict[str, dict] = {
    "simclr": {"proj_hidden_dim": 32, "proj_dim": 16},
    "moco": {"proj_hidden_dim": 32, "proj_dim": 16, "queue_size": 64, "momentum": 0.9},
    "byol": {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32, "momentum": 0.9},
    "simsiam": {"proj_hidden_dim": 32, "proj_dim": 32, "pred_hidden_dim": 16},
    "swav": {"proj_hidden_dim": 32, "proj_dim": 16, "num_prototypes": 10, "freeze_prototypes_iters": 5},
    "barlow": {"proj_hidden_dim": 32, "proj_dim": 32},
    "vicreg": {"proj_hidden_dim": 32, "proj_dim": 32},
    "supervised": {},
}


def make(name: str, **kw: object) -> nn.Module:
    return build_method(name, build_backbone("small_cnn", **TINY_CNN), num_classes=4, **{**SMALL[name], **kw})


def as_list(x: Tensor) -> list[list[float]]:
    return x.double().tolist()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def cos(a: list[float], b: list[float]) -> float:
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def close(value: Tensor, ref: float, tol: float = 1e-4) -> None:
    assert math.isclose(float(value), ref, rel_tol=tol, abs_tol=tol), (float(value), ref)


# ---- (1) losses against naive references -------------------------------------------------------------------
def test_simclr_loss_naive() -> None:
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    z = as_list(torch.cat([z1, z2]))
    n, t = 5, 0.2
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        den = sum(math.exp(cos(z[i], z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(cos(z[i], z[pos]) / t) / den)
    close(simclr_loss(z1, z2, t), total / (2 * n))


def test_moco_loss_naive() -> None:
    q, k = torch.randn(4, 6), torch.randn(4, 6)
    queue = F.normalize(torch.randn(6, 9), dim=0)
    qs, ks, negs = as_list(q), as_list(k), as_list(queue.T)
    t = 0.2
    total = 0.0
    for i in range(4):
        qn = [x / math.sqrt(dot(qs[i], qs[i])) for x in qs[i]]
        pos = math.exp(cos(qs[i], ks[i]) / t)
        den = pos + sum(math.exp(dot(qn, neg) / t) for neg in negs)
        total += -math.log(pos / den)
    close(moco_loss(q, k, queue, t), total / 4)


def test_byol_and_simsiam_losses_naive() -> None:
    p1, p2, z1, z2 = (torch.randn(6, 5) for _ in range(4))
    P1, P2, Z1, Z2 = (as_list(x) for x in (p1, p2, z1, z2))
    close(byol_loss(p1, z2), sum(2 - 2 * cos(P1[i], Z2[i]) for i in range(6)) / 6)
    ref = -0.5 * (sum(cos(P1[i], Z2[i]) for i in range(6)) / 6 + sum(cos(P2[i], Z1[i]) for i in range(6)) / 6)
    close(simsiam_loss(p1, p2, z1, z2), ref)


def naive_sinkhorn(scores: list[list[float]], eps: float, iters: int) -> list[list[float]]:
    """SwAV Algorithm 1 with explicit loops: Q (K x B), normalise rows to 1/K, columns to 1/B."""
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[j][i] / eps) for j in range(b)] for i in range(k)]
    s = sum(map(sum, q))
    q = [[x / s for x in row] for row in q]
    for _ in range(iters):
        q = [[x / sum(row) / k for x in row] for row in q]
        cols = [sum(q[i][j] for i in range(k)) for j in range(b)]
        q = [[q[i][j] / cols[j] / b for j in range(b)] for i in range(k)]
    return [[q[i][j] * b for i in range(k)] for j in range(b)]


def test_sinkhorn_naive_and_marginals() -> None:
    scores = F.normalize(torch.randn(8, 5), dim=1)
    codes = sinkhorn(scores, eps=0.05, iters=3)
    ref = torch.tensor(naive_sinkhorn(as_list(scores), 0.05, 3), dtype=torch.float32)
    torch.testing.assert_close(codes, ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(codes.sum(1), torch.ones(8))
    long = sinkhorn(scores, eps=0.05, iters=200)
    torch.testing.assert_close(long.sum(0), torch.full((5,), 8 / 5), rtol=1e-3, atol=1e-3)  # equipartition


def test_swav_loss_naive() -> None:
    s1, s2 = F.normalize(torch.randn(6, 4), dim=1), F.normalize(torch.randn(6, 4), dim=1)
    q1, q2 = naive_sinkhorn(as_list(s1), 0.05, 3), naive_sinkhorn(as_list(s2), 0.05, 3)
    t = 0.1

    def log_softmax(row: list[float]) -> list[float]:
        lse = math.log(sum(math.exp(x / t) for x in row))
        return [x / t - lse for x in row]

    S1, S2 = as_list(s1), as_list(s2)
    ce12 = sum(-dot(q1[i], log_softmax(S2[i])) for i in range(6)) / 6
    ce21 = sum(-dot(q2[i], log_softmax(S1[i])) for i in range(6)) / 6
    close(swav_loss([s1, s2], t, 0.05, 3), ce12 + ce21)  # the AugSelf reference sums both (trainers.py 373)
    close(swav_loss([s1, s2], t, 0.05, 3, assign_reduction="mean"), (ce12 + ce21) / 2)  # SwAV's main_swav.py
    # multi-crop: extra views only predict; with 3 views each assigned code is predicted by 2 others
    s3 = F.normalize(torch.randn(6, 4), dim=1)
    ce13 = sum(-dot(q1[i], log_softmax(as_list(s3)[i])) for i in range(6)) / 6
    ce23 = sum(-dot(q2[i], log_softmax(as_list(s3)[i])) for i in range(6)) / 6
    close(swav_loss([s1, s2, s3], t, 0.05, 3), (ce12 + ce13) / 2 + (ce21 + ce23) / 2)


def test_barlow_twins_loss_naive() -> None:
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    a, b = as_list(z1), as_list(z2)
    n, d, lam = 10, 4, 5e-3

    def standardize(z: list[list[float]]) -> list[list[float]]:
        cols = []
        for j in range(d):
            col = [z[i][j] for i in range(n)]
            mu = sum(col) / n
            sd = math.sqrt(sum((x - mu) ** 2 for x in col) / n + 1e-5)
            cols.append([(x - mu) / sd for x in col])
        return [[cols[j][i] for j in range(d)] for i in range(n)]

    an, bn = standardize(a), standardize(b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(an[k][i] * bn[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c**2
    close(barlow_twins_loss(z1, z2, lam), loss)


def test_vicreg_loss_naive() -> None:
    z1, z2 = torch.randn(9, 5), torch.randn(9, 5) * 0.3
    n, d = 9, 5

    def var_cov(z: list[list[float]]) -> tuple[float, float]:
        mu = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
        cov = [[sum((z[k][i] - mu[i]) * (z[k][j] - mu[j]) for k in range(n)) / (n - 1) for j in range(d)]
               for i in range(d)]  # fmt: skip
        var = sum(max(0.0, 1 - math.sqrt(cov[j][j] + 1e-4)) for j in range(d)) / d
        off = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return var, off

    a, b = as_list(z1), as_list(z2)
    inv = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    (va, ca), (vb, cb) = var_cov(a), var_cov(b)
    close(vicreg_loss(z1, z2), 25 * inv + 25 * (va + vb) / 2 + 1 * (ca + cb))
    close(vicreg_loss(z1, z2, 1.0, 2.0, 3.0), inv + 2 * (va + vb) / 2 + 3 * (ca + cb))


def test_supervised_loss_naive() -> None:
    logits, labels = [torch.randn(5, 3), torch.randn(5, 3)], torch.tensor([0, 2, 1, 1, 0])
    ref = 0.0
    for lg in logits:
        rows = as_list(lg)
        ref += (
            sum(-(r[y] - math.log(sum(math.exp(x) for x in r))) for r, y in zip(rows, labels.tolist(), strict=True)) / 5
        )
    close(supervised_loss(logits, labels), ref / 2)


# ---- (2) every method trains ----------------------------------------------------------------------
def train(method: nn.Module, batches: list[tuple[list[Tensor], Tensor]], steps: int, lr: float = 0.05) -> list[float]:
    """The trainer's step: forward, backward, ``on_after_backward(step)`` hook, SGD, EMA of momentum pairs."""
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        views, labels = batches[step % len(batches)]
        out = method(views, labels)
        assert isinstance(out, MethodOutput) and out.loss.ndim == 0
        opt.zero_grad()
        out.loss.backward()
        hook = getattr(method, "on_after_backward", None)
        if hook is not None:
            hook(step)
        opt.step()
        tau = momentum_at(method.momentum, method.momentum_schedule, step, steps)
        for online, target in method.momentum_pairs:
            ema_update(getattr(method, online), getattr(method, target), tau)
        losses.append(out.loss.item())
    return losses


def random_batches(n_batches: int, batch: int = 16) -> list[tuple[list[Tensor], Tensor]]:
    base = torch.rand(n_batches * batch, 3, 16, 16)
    v1, v2 = (base + 0.05 * torch.randn_like(base) for _ in range(2))
    labels = torch.randint(0, 4, (n_batches * batch,))
    sl = [slice(i * batch, (i + 1) * batch) for i in range(n_batches)]
    return [([v1[s], v2[s]], labels[s]) for s in sl]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_method_trains(name: str) -> None:
    if name == "moco":
        # a fixed batch would fill the queue with its own keys: cycle 8 batches through a 4-batch queue
        losses = train(make(name), random_batches(8), steps=24)
        assert sum(losses[-4:]) / 4 < sum(losses[4:8]) / 4 - 0.5, losses
        return
    losses = train(make(name), random_batches(1), steps=15)
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05 * abs(sum(losses[:3]) / 3) - 1e-3, losses


# ---- (3) gradients, momentum encoders, queue, prototypes ----------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_reach_backbone_and_features(name: str) -> None:
    m = make(name)
    views, labels = random_batches(1, batch=8)[0]
    out = m(views, labels)
    assert len(out.features) == 2 and all(f.shape == (8, m.backbone.dim) for f in out.features)
    assert out.features[0].requires_grad  # the AugSelf head input is not detached
    assert out.features[1].requires_grad == (name != "moco")  # MoCo: y2 from the momentum backbone
    out.loss.backward()
    grads = [p.grad for p in m.backbone.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    for _, target in m.momentum_pairs:
        assert all(p.grad is None and not p.requires_grad for p in getattr(m, target).parameters())


def test_method_class_contract() -> None:
    for name, cls in METHODS.items():
        params = inspect.signature(cls.__init__).parameters
        assert "num_classes" in params, name
        for attr in ("momentum_pairs", "momentum", "momentum_schedule", "fixed_lr_modules", "views_needed"):
            assert hasattr(cls, attr) or attr == "momentum", (name, attr)
    assert METHODS["simsiam"].fixed_lr_modules == ("predictor",)
    assert METHODS["byol"].momentum_schedule == "cosine"
    defaults = {
        n: {k: p.default for k, p in inspect.signature(c.__init__).parameters.items()} for n, c in METHODS.items()
    }
    assert defaults["simclr"]["temperature"] == 0.2 and defaults["simclr"]["proj_dim"] == 128
    assert defaults["moco"]["queue_size"] == 65536 and defaults["moco"]["momentum"] == 0.999
    assert defaults["moco"]["temperature"] == 0.2 and defaults["moco"]["enqueue"] == "key"
    b = defaults["byol"]
    assert (b["proj_hidden_dim"], b["proj_dim"], b["momentum"]) == (4096, 256, 0.996)
    assert (defaults["simsiam"]["proj_dim"], defaults["simsiam"]["pred_hidden_dim"]) == (2048, 512)
    s = defaults["swav"]
    assert (s["num_prototypes"], s["temperature"], s["sinkhorn_eps"], s["sinkhorn_iters"]) == (
        100,
        0.1,
        0.05,
        3,
    )
    assert s["freeze_prototypes_iters"] == 409 and s["assign_reduction"] == "sum"
    assert defaults["barlow"]["lambd"] == 5e-3 and defaults["barlow"]["proj_dim"] == 8192
    v = defaults["vicreg"]
    assert (v["sim_weight"], v["var_weight"], v["cov_weight"], v["proj_dim"]) == (25.0, 25.0, 1.0, 8192)


def test_build_method_unknown_name() -> None:
    with pytest.raises(ValueError, match="Did you mean 'simclr'") as e:
        build_method("simclrr", build_backbone("small_cnn", **TINY_CNN))
    assert all(n in str(e.value) for n in METHODS)


def test_moco_queue_and_momentum_encoder() -> None:
    m = make("moco", queue_size=32)
    assert {"queue", "queue_ptr"} <= set(m.state_dict())  # checkpoints capture the queue
    views, _ = random_batches(1, batch=8)[0]
    m(views).loss.backward()
    assert int(m.queue_ptr) == 8
    with torch.no_grad():
        keys = F.normalize(m.momentum_projector(m.momentum_backbone(views[1])), dim=1)
    torch.testing.assert_close(m.queue[:, :8].T, keys)
    for _ in range(3):
        m(views)
    assert int(m.queue_ptr) == 0  # wrapped around 32 / 8 = 4 batches
    mq = make("moco", queue_size=32, enqueue="query")
    mq(views)
    with torch.no_grad():
        queries = F.normalize(mq.projector(mq.backbone(views[0])), dim=1)
    torch.testing.assert_close(mq.queue[:, :8].T, queries)
    m.eval()
    m(views)
    assert int(m.queue_ptr) == 0  # no enqueue in eval mode
    with pytest.raises(ValueError, match="divisible"):
        make("moco", queue_size=30).train()([v[:8] for v in views])
    with pytest.raises(ValueError, match="enqueue"):
        make("moco", enqueue="keys")


def test_ema_update_and_schedule() -> None:
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    ema_update(online, target, 0.9)
    for b, o, t in zip(before, online.parameters(), target.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    assert momentum_at(0.996, "const", 50, 100) == 0.996
    assert momentum_at(0.996, "cosine", 0, 100) == pytest.approx(0.996)
    assert momentum_at(0.996, "cosine", 50, 100) == pytest.approx(0.998)
    assert momentum_at(0.996, "cosine", 100, 100) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="schedule"):
        momentum_at(0.9, "linear", 0, 10)


def test_momentum_encoders_follow_ema() -> None:
    for name in ("byol", "moco"):
        m = make(name)
        target0 = [p.clone() for p in m.momentum_backbone.parameters()]
        train(m, random_batches(1, batch=8), steps=2)
        moved = [not torch.equal(a, b) for a, b in zip(target0, m.momentum_backbone.parameters(), strict=True)]
        assert any(moved), name
        online = list(m.backbone.parameters())
        tgt = [p.clone() for p in m.momentum_backbone.parameters()]
        ema_update(m.backbone, m.momentum_backbone, 0.5)
        for o, t, new in zip(online, tgt, m.momentum_backbone.parameters(), strict=True):
            torch.testing.assert_close(new, 0.5 * t + 0.5 * o)


def test_swav_prototypes_frozen_then_trained() -> None:
    m = make("swav", freeze_prototypes_iters=3)
    w0 = F.normalize(m.prototypes.weight.detach().clone(), dim=1)
    batches = random_batches(1, batch=8)
    train(m, batches, steps=3)
    torch.testing.assert_close(m.prototypes.weight, w0)  # only re-normalised
    assert not m.prototype_grad_enabled(2) and m.prototype_grad_enabled(3)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    out = m(*batches[0])
    out.loss.backward()
    m.on_after_backward(3)
    opt.step()
    assert not torch.allclose(m.prototypes.weight, w0)
    m(*batches[0])
    torch.testing.assert_close(m.prototypes.weight.norm(dim=1), torch.ones(10))  # normalised each step


def test_swav_multicrop() -> None:
    m = make("swav")
    big = random_batches(1, batch=8)[0][0]
    small = [F.interpolate(v, size=8) for v in big]
    out = m(big + small)
    assert math.isfinite(out.loss.item()) and len(out.features) == 2 and out.features[0].shape == (8, 32)


def test_supervised_needs_labels() -> None:
    with pytest.raises(ValueError, match="labelled dataset"):
        build_method("supervised", build_backbone("small_cnn", **TINY_CNN), num_classes=None)
    m = make("supervised")
    views, labels = random_batches(1, batch=4)[0]
    with pytest.raises(ValueError, match="label"):
        m(views, None)
    with pytest.raises(ValueError, match="label"):
        m(views, torch.tensor([0, -1, 1, 2]))
    assert "supervised/acc" in m(views, labels).logs
