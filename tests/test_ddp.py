"""DDP on 2 CPU ranks (gloo) gives the same gradients as 1 process on the same global batch.

For every method (and AugSelf's head, alone and on top of SimCLR) one process computes the loss and the
gradients of all trainable parameters on a global batch of 16 two-view images; two spawned gloo ranks then
run one DDP step, each on its contiguous half, with every BatchNorm synchronised. Rank 0's DDP-averaged
gradients, the rank-averaged loss and all buffers after the step (BN running statistics, MoCo's queue and
pointer) must equal the single-process ones.

``nn.SyncBatchNorm`` refuses CPU tensors (it needs CUDA/XPU/HPU), so the ranks use :class:`GlobalBatchNorm`,
a CPU SyncBN whose batch statistics are all-reduced with gradients (the single-process reference keeps
plain ``nn.BatchNorm``, so the replacement is checked too). Negative controls show the comparison has
teeth: SimCLR without the embedding gather, SwAV with a per-rank Sinkhorn and BYOL with unsynchronised BN
must *not* match.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams
from augself.augment.sample import sample_params
from augself.augself_head import AugSelf
from augself.methods import build_method
from augself.models.backbones import build_backbone

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo unavailable"
)

WORLD = 2
BATCH = 16
SIZE = 16
NUM_CLASSES = 5
WIDTHS = (8, 16, 16, 32)
RTOL, ATOL = 1e-4, 1e-6
AUGSELF_WEIGHTS = {"crop": 1.0, "color": 1.0, "flip": 1.0, "rot": 1.0}

#: name -> (method or None for AugSelf alone, method kwargs, with AugSelf head)
CASES: dict[str, tuple[str | None, dict[str, Any], bool]] = {
    "simclr": ("simclr", {"proj_hidden_dim": 32, "proj_dim": 16}, False),
    "moco": ("moco", {"proj_hidden_dim": 32, "proj_dim": 16, "queue_size": 32, "momentum": 0.9}, False),
    "byol": ("byol", {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32}, False),
    "simsiam": ("simsiam", {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 8}, False),
    "swav": ("swav", {"proj_hidden_dim": 32, "proj_dim": 16, "num_prototypes": 10}, False),
    "barlow": ("barlow", {"proj_hidden_dim": 32, "proj_dim": 16}, False),
    "vicreg": ("vicreg", {"proj_hidden_dim": 32, "proj_dim": 16}, False),
    "supervised": ("supervised", {}, False),
    "augself": (None, {}, True),
    "simclr+augself": ("simclr", {"proj_hidden_dim": 32, "proj_dim": 16}, True),
}
#: negative controls: control -> (case, ``module.attr`` replaced under DDP by a no-op from ``_NO_OPS``, or
#: None for unsynchronised BatchNorm); their gradients must differ from the reference
CONTROLS: dict[str, tuple[str, str | None]] = {
    "simclr_no_gather": ("simclr", "augself.methods.simclr.gather_with_grad"),
    "swav_local_sinkhorn": ("swav", "augself.methods.swav.is_distributed"),
    "byol_unsynced_bn": ("byol", None),
}

_NO_OPS: dict[str, Any] = {"gather_with_grad": lambda x: x, "is_distributed": lambda: False}

Batch = tuple[list[Tensor], Tensor, list[ViewParams]]
Result = dict[str, Any]
Results = tuple[dict[str, Result], dict[str, Result]]
"""(single-process reference, DDP rank 0) results by case name."""


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the backward all-reduces the incoming gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """SyncBatchNorm for CPU: training-mode statistics over all ranks' samples, gradients through them.

    Mirrors ``nn.BatchNorm{1,2}d`` (biased variance to normalise, unbiased global variance for the running
    estimate); evaluation mode falls back to the running statistics.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64)
        dist.all_reduce(count)
        n = float(count)
        mean = _AllReduceSum.apply(x.sum(dims)) / n
        var = _AllReduceSum.apply((x - mean.view(shape)).pow(2).sum(dims)) / n
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        return y

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm in ``module`` by a :class:`GlobalBatchNorm` sharing its tensors
        (as ``nn.SyncBatchNorm.convert_sync_batchnorm`` does)."""
        if isinstance(module, _BatchNorm):
            m = module
            new = cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module


class Step(nn.Module):
    """One training objective: a method's loss, plus AugSelf's loss on its backbone features when ``head``."""

    def __init__(self, method: nn.Module | None, backbone: nn.Module, head: AugSelf | None) -> None:
        super().__init__()
        self.method = method
        if method is None:
            self.backbone = backbone
        self.head = head
        self.cfg = ViewConfig(size=SIZE, rotate_p=0.5)

    def forward(self, views: list[Tensor], labels: Tensor, p1: ViewParams, p2: ViewParams) -> Tensor:
        if self.method is not None:
            out = self.method(views, labels)
            loss, feats = out.loss, out.features
        else:
            loss, feats = views[0].new_zeros(()), [self.backbone(v) for v in views[:2]]
        if self.head is not None:
            loss = loss + self.head(feats[0], feats[1], p1, p2, self.cfg)[0]
        return loss


def build(case: str) -> Step:
    """The case's model, deterministically initialised."""
    name, kwargs, with_head = CASES[case]
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", widths=WIDTHS)
    method = None if name is None else build_method(name, backbone, num_classes=NUM_CLASSES, **kwargs)
    head = AugSelf(backbone.dim, AUGSELF_WEIGHTS, hidden_dim=16) if with_head else None
    return Step(method, backbone, head)


def make_batch() -> Batch:
    """Fixed global batch: two views, labels and the views' augmentation parameter records."""
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(BATCH, 3, SIZE, SIZE, generator=g) for _ in range(2)]
    labels = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
    cfg = ViewConfig(size=SIZE, rotate_p=0.5)
    params = [sample_params(cfg, BATCH, generator=g, input_size=(SIZE, SIZE)) for _ in range(2)]
    return views, labels, params


def run_step(model: nn.Module, batch: Batch, index: slice = slice(None)) -> Tensor:
    """Forward + backward of ``model`` on ``batch[index]``; returns the (detached) loss."""
    views, labels, params = batch
    loss = model([v[index] for v in views], labels[index], params[0][index], params[1][index])
    loss.backward()
    return loss.detach()


def collect(model: nn.Module, loss: Tensor) -> Result:
    """Loss, gradients of the trainable parameters and all buffers, detached copies."""
    params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    grads = {k: None if p.grad is None else p.grad.clone() for k, p in params}
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    return {"loss": loss.clone(), "grads": grads, "buffers": buffers}


def _ddp_case(case: str, state: dict[str, Tensor], batch: Batch, rank: int, sync_bn: bool = True) -> Result:
    """One DDP step of ``case`` from ``state`` on this rank's contiguous half; rank-averaged loss."""
    model = build(case)
    model.load_state_dict(state)
    if sync_bn:
        GlobalBatchNorm.convert(model)
    ddp = DistributedDataParallel(model)
    local = BATCH // WORLD
    loss = run_step(ddp, batch, slice(rank * local, (rank + 1) * local))
    dist.all_reduce(loss)
    return collect(model, loss / WORLD)


def _worker(rank: int, tmp: str) -> None:
    """One DDP rank: every case and control on its half of the batch; rank 0 saves the results."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD)
    try:
        init = torch.load(Path(tmp) / "init.pt", weights_only=False)
        batch, states = init["batch"], init["states"]
        out = {case: _ddp_case(case, states[case], batch, rank) for case in CASES}
        for control, (case, target) in CONTROLS.items():
            if target is None:
                out[control] = _ddp_case(case, states[case], batch, rank, sync_bn=False)
                continue
            with mock.patch(target, _NO_OPS[target.rsplit(".", 1)[1]]):
                out[control] = _ddp_case(case, states[case], batch, rank)
        if rank == 0:
            torch.save(out, Path(tmp) / "ddp.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    """(single-process reference, DDP rank 0) results for every case; one spawn for the whole module."""
    tmp = tmp_path_factory.mktemp("ddp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch = make_batch()
        states, ref = {}, {}
        for case in CASES:
            model = build(case)
            states[case] = copy.deepcopy(model.state_dict())
            ref[case] = collect(model, run_step(model, batch))
        torch.save({"batch": batch, "states": states}, tmp / "init.pt")
        mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
        yield ref, torch.load(tmp / "ddp.pt", weights_only=False)
    finally:
        torch.set_num_threads(threads)


def _mismatches(ref: Result, got: Result, what: str) -> list[str]:
    """Entries of ``what`` ("grads" / "buffers") whose max error exceeds ATOL + RTOL * max |reference|."""
    bad = []
    for k, r in ref[what].items():
        g = got[what][k]
        if (r is None) != (g is None):
            bad.append(f"{k}: grad is None in {'reference' if r is None else 'DDP'} only")
        elif r is not None:
            err, scale = (g.double() - r.double()).abs().max().item(), r.double().abs().max().item()
            if err > ATOL + RTOL * scale:
                bad.append(f"{k}: max abs err {err:.3g} (ref max {scale:.3g})")
    return bad


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_matches_single_process(case: str, results: Results) -> None:
    """Same loss, gradients and post-step buffers with 2 DDP ranks as with 1 process."""
    ref, ddp = results[0][case], results[1][case]
    assert set(ddp["grads"]) == set(ref["grads"])
    assert all(g is not None for g in ref["grads"].values()), "every trainable parameter gets a gradient"
    torch.testing.assert_close(ddp["loss"], ref["loss"], rtol=RTOL, atol=ATOL)
    bad = _mismatches(ref, ddp, "grads")
    assert not bad, f"{case}: DDP gradients differ from 1 process:\n" + "\n".join(bad)
    bad = _mismatches(ref, ddp, "buffers")
    assert not bad, f"{case}: buffers after the step differ:\n" + "\n".join(bad)


def test_moco_queue_holds_global_keys(results: Results) -> None:
    """After one step both queues hold the 16 gathered keys in the first slots, the pointer moved by 16."""
    ref, ddp = results[0]["moco"]["buffers"], results[1]["moco"]["buffers"]
    init = build("moco").method.queue  # type: ignore[union-attr]
    assert int(ref["method.queue_ptr"]) == int(ddp["method.queue_ptr"]) == BATCH
    assert not torch.allclose(ref["method.queue"][:, :BATCH], init[:, :BATCH])
    torch.testing.assert_close(ref["method.queue"][:, BATCH:], init[:, BATCH:])
    torch.testing.assert_close(ddp["method.queue"], ref["method.queue"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("control", list(CONTROLS))
def test_controls_detect_broken_ddp(control: str, results: Results) -> None:
    """A missing gather, a per-rank Sinkhorn or unsynchronised BN is caught by the same comparison."""
    ref, got = results[0][CONTROLS[control][0]], results[1][control]
    assert _mismatches(ref, got, "grads"), f"{control}: gradients unexpectedly match; the DDP check is blind"
