"""DDP on 2 CPU ranks (gloo) gives the same gradients as 1 process on the same global batch.

For every method (and AugSelf's head, alone and on top of SimCLR) one process computes the loss and the
gradients of all trainable parameters on a global batch of 16 two-view images; two spawned gloo ranks then
run one DDP step, each on its contiguous half, with every BatchNorm synchronised. Rank 0's DDP-averaged
gradients, the rank-averaged loss and all buffers after the step (BN running statistics, MoCo's queue and
pointer) must equal the single-process ones.

``nn.SyncBatchNorm`` refuses CPU tensors (it needs CUDA/XPU/HPU), so the ranks convert their BatchNorm layers
with the library's :func:`augself.train.sync_bn.convert_sync_batchnorm` (:class:`GlobalSyncBatchNorm`, whose
batch statistics are all-reduced with gradients; the single-process reference keeps plain ``nn.BatchNorm``, so
the replacement is checked too). Negative controls show the comparison has
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
from augself.models.backbones import build_backbone, load_backbone
from augself.train.sync_bn import GlobalSyncBatchNorm, convert_sync_batchnorm

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


class Step(nn.Module):
    """One training objective: a method's loss, plus AugSelf's loss on its backbone features when ``head``."""

    def __init__(self, method: nn.Module | None, backbone: nn.Module, head: AugSelf | None) -> None:
        super().__init__()
        self.method = method
        if method is None:
            self.backbone = backbone
        self.head = head
        self.cfg = ViewConfig(size=SIZE, rot_p=0.5)

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
    cfg = ViewConfig(size=SIZE, rot_p=0.5)
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
        convert_sync_batchnorm(model)
        bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        assert bns and all(isinstance(m, GlobalSyncBatchNorm) for m in bns)
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


# ---- library: the sync-BN layer and the real Lightning DDP run --------------------------------------------
def test_global_sync_bn_without_process_group_is_plain_batchnorm() -> None:
    """Outside a distributed run the converted layer equals BatchNorm (outputs, gradients, running stats)."""
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.BatchNorm1d(144))
    conv = convert_sync_batchnorm(copy.deepcopy(ref))
    assert [type(m) for m in conv.modules()].count(GlobalSyncBatchNorm) == 2
    x = torch.randn(6, 3, 8, 8)
    (ref(x) ** 2).sum().backward()
    (conv(x) ** 2).sum().backward()
    for (k, a), b in zip(ref.named_parameters(), conv.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=k)
    for (k, a), b in zip(ref.named_buffers(), conv.buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=k)


_LIGHTNING_SCRIPT = """
import sys
import warnings
from pathlib import Path

import lightning as L
import torch

from augself.config import load_config
from augself.train.run import run_pretrain
from augself.train.sync_bn import GlobalSyncBatchNorm


class Record(L.Callback):
    losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.data = batch["image"].float().mean()
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        bns = [m for m in pl_module.method.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        metrics = trainer.callback_metrics
        torch.save(
            {"sync": [isinstance(m, GlobalSyncBatchNorm) for m in bns], "mean": bns[0].running_mean.clone(),
             "steps": trainer.global_step, "world": trainer.world_size, "data": self.data, "losses": self.losses,
             "epoch_loss": float(metrics["train/loss_epoch"]), "callback_loss": float(metrics["train/loss"]),
             "warnings": [str(w.message) for w in seen]},
            Path(sys.argv[1]) / f"rank{trainer.global_rank}.pt",
        )


torch.set_num_threads(1)
over = [f"out={sys.argv[1]}/run", f"trainer.sync_batchnorm={sys.argv[2]}", "data.name=synthetic", "data.n=64",
        "data.size=16", "data.num_workers=0", "augment.size=16", "model.backbone=small_cnn",
        "model.channels_last=false", "method=simclr", "method_args.proj_hidden_dim=32", "method_args.proj_dim=16",
        "augself.crop=1.0", "trainer.batch_size=8", "trainer.max_steps=2", "trainer.epochs=1",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.progress_bar=false",
        "monitor.online_probe=false", "monitor.every_n_epochs=0"]
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    run_pretrain(load_config(None, over), callbacks=[Record()])
"""


def test_lightning_ddp_cpu_run_with_sync_bn(tmp_path: Path) -> None:
    """``trainer.strategy=ddp, accelerator=cpu, devices=2, sync_batchnorm=true`` through ``run_pretrain``
    (Lightning launches the second rank as a subprocess) trains 2 steps and exports the backbone. Every
    BatchNorm is converted to :class:`GlobalSyncBatchNorm`, so both ranks hold the same running statistics
    although they saw different samples (without the sync they differ; see ``byol_unsynced_bn`` above). The
    epoch-level ``train/loss_epoch`` is the mean over both ranks' steps, with no Lightning warning about
    ``sync_dist``."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_run.py"
    script.write_text(_LIGHTNING_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for var in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "true"], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["steps"] == r1["steps"] == 2
    assert r0["sync"] and all(r0["sync"]) and all(r1["sync"]), "BatchNorm layers were not converted"
    assert load_backbone(tmp_path / "run" / "backbone.pt").dim == 256, "the exported backbone reloads"
    assert not torch.allclose(r0["data"], r1["data"]), "both ranks saw the same batch: the check below is blind"
    torch.testing.assert_close(r0["mean"], r1["mean"], rtol=1e-5, atol=1e-7)
    # the epoch loss is the mean over both ranks' steps (equal batches), the same on both ranks, not rank 0's own;
    # float32 sums of four ~5.0 values and one division: a few ulp (1e-6 relative is ample)
    every = r0["losses"] + r1["losses"]
    assert len(r0["losses"]) == len(r1["losses"]) == 2
    want = sum(every) / len(every)
    own = sum(r0["losses"]) / 2
    assert abs(own - want) > 1e-4 * abs(want), "both ranks had the same loss: the epoch-mean check is blind"
    for r in (r0, r1):
        assert r["epoch_loss"] == pytest.approx(want, rel=1e-6) and r["callback_loss"] == r["epoch_loss"]
    assert not [w for w in r0["warnings"] if "sync_dist" in w], r0["warnings"]
