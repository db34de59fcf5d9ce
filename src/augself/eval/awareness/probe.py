"""The predictability probe of the awareness report (as CASSLE's ``transfer_aug_predict.py``, reference §6.3).

A probe on frozen features of two views ``[f(v1), f(v2)]`` (both orders, as AugSelf's head) predicts the AugSelf
target of the pair; by default a one-hidden-layer MLP like AugSelf's heads, since a linear probe on the
concatenation cannot represent "same flip state" (an XOR of the two views' flip bits) even for a perfect encoder.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from augself.augment.targets import TARGETS

__all__ = ["fit_probe", "pairs", "probe_target", "r2", "split_images"]


def split_images(n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded 60 / 20 / 20 image split (train / val / test); both views of an image stay together."""
    perm = torch.randperm(n, generator=g)
    n_te = max(1, round(0.2 * n))
    n_va = max(1, round(0.2 * n))
    return perm[n_te + n_va :], perm[n_te : n_te + n_va], perm[:n_te]


def pairs(f1: Tensor, f2: Tensor, t12: Tensor, t21: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Probe inputs ``[f(a), f(b)]`` and targets for both orders (a, b) = (1, 2), (2, 1) (AugSelf)."""
    x = torch.cat([torch.cat([f1[idx], f2[idx]], 1), torch.cat([f2[idx], f1[idx]], 1)])
    return x, torch.cat([t12[idx], t21[idx]])


def probe_target(name: str, t: Tensor) -> Tensor:
    """Target ``t`` of augmentation ``name`` as the probe reads it (binary flip: class 1 = same flip state)."""
    if TARGETS[name].kind == "binary":
        return t.view(-1).long()
    return t


def fit_probe(
    x: tuple[Tensor, Tensor, Tensor],
    y: tuple[Tensor, Tensor, Tensor],
    *,
    kind: str,
    out_dim: int,
    hidden: int,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
) -> Tensor:
    """Train a probe (Adam, full batch, best val step kept) and return its test predictions (CPU).

    Inputs are standardised with the train statistics; regression targets too (predictions are returned in
    the original units).
    """
    xtr, xva, xte = (t.to(device, torch.float32) for t in x)
    ytr, yva = y[0].to(device), y[1].to(device)
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xva, xte = ((t - mu) / sd for t in (xtr, xva, xte))
    if kind == "class":
        ymu = ysd = None
    else:
        ytr, yva = ytr.float(), yva.float()
        ymu, ysd = ytr.mean(0), ytr.std(0).clamp_min(1e-6)
        ytr, yva = (ytr - ymu) / ysd, (yva - ymu) / ysd
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        d = xtr.shape[1]
        layers: list[nn.Module] = (
            [nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)] if hidden > 0 else [nn.Linear(d, out_dim)]
        )
        net = nn.Sequential(*layers).to(device)
    # plain AdamW written out: constructing a torch.optim optimizer imports torch._dynamo (seconds on a busy CPU)
    ps = [q for q in net.parameters()]
    m1 = [torch.zeros_like(q) for q in ps]
    m2 = [torch.zeros_like(q) for q in ps]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def adamw_step(t: int) -> None:
        with torch.no_grad():
            for q, a, b in zip(ps, m1, m2, strict=True):
                gq = q.grad
                assert gq is not None
                q.mul_(1 - lr * weight_decay)
                a.mul_(b1).add_(gq, alpha=1 - b1)
                b.mul_(b2).addcmul_(gq, gq, value=1 - b2)
                denom = (b / (1 - b2**t)).sqrt_().add_(eps)
                q.addcdiv_(a, denom, value=-lr / (1 - b1**t))
                q.grad = None

    def loss_fn(out: Tensor, t: Tensor) -> Tensor:
        if kind == "class":
            return nn.functional.cross_entropy(out, t.long())
        return nn.functional.mse_loss(out, t)

    best = (math.inf, {k: v.detach().clone() for k, v in net.state_dict().items()})
    every = max(1, steps // 50)
    for step in range(1, steps + 1):
        loss_fn(net(xtr), ytr).backward()
        adamw_step(step)
        if step % every == 0 or step == steps:
            with torch.no_grad():
                v = float(loss_fn(net(xva), yva))
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in net.state_dict().items()})
    net.load_state_dict(best[1])
    with torch.no_grad():
        out = net(xte)
    if kind == "class":
        return out.argmax(1).cpu()
    assert ymu is not None and ysd is not None
    return (out * ysd + ymu).cpu()


def r2(pred: Tensor, y: Tensor) -> list[float]:
    """Coefficient of determination per target dimension (NaN where the target is constant)."""
    y, pred = y.double(), pred.double()
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return [float(1 - r / t) if t > 1e-12 else float("nan") for r, t in zip(ss_res, ss_tot, strict=True)]
