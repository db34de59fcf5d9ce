"""Pretraining throughput: our end-to-end SimCLR path vs the bare model step vs lightly's SimCLR.

All figures are measured side by side in one process on the same ImageFolder data, with the ``small_cnn``
backbone, SimCLR's projector (d -> d (BN, ReLU) -> 128) and NT-Xent (T = 0.2), SGD, the same batch size and
the same number of DataLoader workers. **images/s counts source images**: batch / step time, where one step
turns every image into two 32-px views, runs forward + backward on both and takes one optimiser step.

* ``bare``: backbone + projector forward/backward/SGD step on pre-made normalised float tensors
  (2 x B x 3 x 32 x 32, channels_last): the ceiling for any pipeline with this model.
* ``ours (Trainer)``: what users run, ``augself.train.run.run_pretrain`` (Lightning ``Trainer.fit``, CSV
  logger, checkpoint callback, online probe) with a timing callback; warm-up steps are not timed.
  Includes decoding (DataLoader workers), the batched augmentation in the step, the loss and the logging.
* ``ours (manual loop)``: the same DataLoader + ``PretrainModule.training_step`` + backward + step without
  Lightning (shows the Trainer's own overhead).
* ``AugSelf overhead``: step time with ``augself={crop: 1.0, color: 1.0}`` / without, on fixed uint8
  batches (no loading), repetitions interleaved, median ratio, with its floor (the AugSelf module alone and its
  heads' matrix products alone, as fractions of the step without). Also end to end through the Trainer. On the
  small CNN the heads alone cost ~5 % of the step (their FLOPs are 8.6 % of it), so no target is set there.
* ``AugSelf overhead on the paper's backbone`` (``--overhead-backbone resnet18 --overhead-size 96``, the STL-10
  setting): the same interleaved measurement for the paper's STL-10 SimCLR config (``--overhead-config``,
  default ``configs/stl10/simclr.yaml``) with that backbone and view size, ``--overhead-batch`` images, fp32 (the
  step is called directly, no autocast). Target: ratio <= 1.03.
* ``lightly``: ``lightly.transforms.SimCLRTransform`` per sample in DataLoader workers on the same files
  (torchvision ``ImageFolder``), ``lightly.loss.NTXentLoss(temperature=0.2)``, the same model, a plain
  PyTorch loop. Both pipelines: crop scale (0.2, 1), flip 0.5, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale
  0.2, no blur (the CIFAR recipe; ``--blur-p`` turns it on for both), the same normalisation.

Usage (needs the ``bench`` extra for lightly: ``pip install 'augself[bench]'``)::

    python benchmarks/pretrain_throughput.py --data ../shared/data/cifar10-small --batch 256 --steps 40
    # only the AugSelf overhead on ResNet-18 at 96 px (STL-10 setting):
    python benchmarks/pretrain_throughput.py --skip bare trainer lightly manual overhead trainer_augself \
        --overhead-backbone resnet18 --overhead-size 96 --overhead-batch 32 --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from augself.config import PretrainConfig, load_config
from augself.data.registry import build_dataset
from augself.methods.simclr import SimCLR
from augself.models.backbones import build_backbone
from augself.train.module import PretrainModule
from augself.train.optim import build_optimizer, param_groups
from augself.train.run import _num_classes, run_pretrain

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
AUGSELF = "augself={crop: 1.0, color: 1.0}"
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "stl10" / "simclr.yaml"


# ---- helpers ------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(times: list[float], warmup: int, batch: int) -> float:
    """images/s from the end times of consecutive steps: steps after ``warmup`` / their wall time."""
    t = times[warmup - 1 :] if warmup > 0 else times
    if len(t) < 2:
        raise ValueError("need at least one timed step after the warm-up")
    return (len(t) - 1) * batch / (t[-1] - t[0])


def config(args: argparse.Namespace, out: Path, augself: bool = False) -> PretrainConfig:
    """The benchmark's pretraining config: SimCLR + small_cnn at 32 px, CIFAR normalisation."""
    accel = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = [
        f"out={out}",
        f"data.name={Path(args.data).resolve()}",
        "data.size=32",
        f"data.num_workers={args.workers}",
        f"data.cache_mb={args.cache_mb}",
        "model.backbone=small_cnn",
        "method=simclr",
        "augment.size=32",
        f"augment.blur_p={args.blur_p}",
        f"augment.mean=[{','.join(map(str, MEAN))}]",
        f"augment.std=[{','.join(map(str, STD))}]",
        f"trainer.batch_size={args.batch}",
        f"trainer.max_steps={args.warmup + args.steps}",
        "trainer.epochs=1000",
        f"trainer.accelerator={accel}",
        "trainer.devices=1",
        "trainer.progress_bar=false",
    ]
    return load_config(None, [*overrides, *([AUGSELF] if augself else [])])


def paper_config(args: argparse.Namespace, out: Path, augself: bool = False) -> PretrainConfig:
    """``--overhead-config`` (the paper's STL-10 SimCLR) with ``--overhead-backbone`` at ``--overhead-size`` px on
    the benchmark's images (decoded at that size), ``--overhead-batch`` images per step, one CPU/GPU device."""
    size = args.overhead_size
    overrides = [
        f"out={out}",
        f"data.name={Path(args.data).resolve()}",
        "data.split=train",
        f"data.size={size}",
        "data.num_workers=0",
        f"model.backbone={args.overhead_backbone}",
        f"augment.size={size}",
        f"trainer.batch_size={args.overhead_batch}",
        f"trainer.accelerator={'gpu' if args.device.startswith('cuda') else 'cpu'}",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
    ]
    return load_config(args.overhead_config, [*overrides, *([AUGSELF] if augself else [])])


def make_optimizer(module: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``PretrainModule.configure_optimizers`` builds (without the lr schedule)."""
    o = cfg.optim
    groups = param_groups(module, o.weight_decay, o.exclude_norm_bias)
    return build_optimizer(o.name, groups, o.base_lr, o.momentum, o.weight_decay, o.betas, o.lars_eta)


def cycle(loader: DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


# ---- 1. bare model step -------------------------------------------------------------------------------
def bench_bare(args: argparse.Namespace, cfg: PretrainConfig, device: torch.device) -> float:
    """Backbone + projector + NT-Xent + SGD on pre-made normalised tensors (the model ceiling)."""
    module = PretrainModule(cfg, num_classes=None).to(device)
    method = module.method.train()
    opt = make_optimizer(method, cfg)
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, 32, 32)
    views = [torch.randn(shape, generator=g).to(device).contiguous(memory_format=torch.channels_last) for _ in range(2)]
    times = []
    for _ in range(args.warmup + args.steps):
        out = method(views)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter())
    return throughput(times, args.warmup, args.batch)


# ---- 2. ours end to end through the Trainer -----------------------------------------------------------
class StepTimer(L.Callback):
    """Records the wall-clock time at the end of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        sync(trainer.strategy.root_device)
        self.times.append(time.perf_counter())


def bench_trainer(args: argparse.Namespace, cfg: PretrainConfig) -> float:
    timer = StepTimer()
    run_pretrain(cfg, callbacks=[timer])
    return throughput(timer.times, args.warmup, args.batch)


# ---- 3. ours end to end, manual loop -----------------------------------------------------------------
def train_loader(args: argparse.Namespace, dataset: Dataset) -> DataLoader:
    """The DataLoader settings of ``run_pretrain`` (shuffled, drop_last, persistent workers)."""
    return DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=args.device.startswith("cuda"),
        generator=torch.Generator().manual_seed(0),
    )


def bench_manual(args: argparse.Namespace, cfg: PretrainConfig, device: torch.device) -> float:
    from augself.train.run import maybe_cache

    dataset = maybe_cache(build_dataset(cfg.data.name, "train", size=32), cfg)
    module = PretrainModule(cfg, _num_classes(dataset)).to(device).train()
    opt = make_optimizer(module, cfg)
    times = []
    batches = cycle(train_loader(args, dataset))
    for i in range(args.warmup + args.steps):
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        loss = module.training_step(batch, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter())
    return throughput(times, args.warmup, args.batch)


# ---- 4. AugSelf overhead on fixed batches ---------------------------------------------------------------
def bench_augself_overhead(
    args: argparse.Namespace, cfg0: PretrainConfig, cfg1: PretrainConfig, device: torch.device
) -> tuple[float, list[float], dict[str, float]]:
    """Median over interleaved repetitions of (step time with AugSelf) / (step time without), the ratios, and
    the AugSelf parts measured alone as fractions of the step time without (best of each); on CPU also the
    ratios of the process's CPU time (``cpu_ratio``: their median, ``cpu_ratios``), which other processes on a
    busy machine do not inflate (exact with one intra-op thread; with more, spin-waiting threads add noise)."""
    dataset = build_dataset(cfg0.data.name, "train", size=cfg0.data.size)
    batch = cfg0.trainer.batch_size
    it = iter(DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0))
    batches = [{k: v.to(device) for k, v in next(it).items()} for _ in range(2)]
    steps: list[Callable[[int], None]] = []
    modules: list[PretrainModule] = []
    for cfg in (cfg0, cfg1):
        torch.manual_seed(0)
        module = PretrainModule(cfg, _num_classes(dataset)).to(device).train()
        modules.append(module)
        opt = make_optimizer(module, cfg)

        def step(i: int, module: PretrainModule = module, opt: torch.optim.Optimizer = opt) -> None:
            loss = module.training_step(batches[i % len(batches)], i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for i in range(2):  # warm-up
            step(i)
        steps.append(step)
    ratios, cpu_ratios, step0 = [], [], []
    for rep in range(args.overhead_reps):
        t, c = [0.0, 0.0], [0.0, 0.0]
        for k in (0, 1) if rep % 2 == 0 else (1, 0):
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(args.overhead_steps):
                steps[k](i)
            sync(device)
            t[k], c[k] = time.perf_counter() - start, time.process_time() - cpu_start
        ratios.append(t[1] / t[0])
        cpu_ratios.append(c[1] / c[0])
        step0.append(t[0] / args.overhead_steps)
    # the AugSelf parts alone, on the AugSelf module (cfg1); none for an A/A check (both without AugSelf)
    parts = augself_parts(modules[1], batches[0], device, args.overhead_reps) if modules[1].augself else {}
    fractions = {k: v / min(step0) for k, v in parts.items()}
    if device.type == "cpu":  # CPU time of this process: what the step costs, whatever else runs on the machine
        fractions["cpu_ratio"] = statistics.median(cpu_ratios)
        fractions["cpu_ratios"] = cpu_ratios  # type: ignore[assignment]
    return statistics.median(ratios), ratios, fractions


def augself_parts(module: PretrainModule, batch: dict[str, Any], device: torch.device, reps: int) -> dict[str, float]:
    """Seconds (best of ``reps``) of the AugSelf module alone, forward + backward (heads, targets, losses)
    on features of the step's shape, and of its heads' matrix products alone (forward, input and weight
    gradients, as plain ``torch.mm`` of the same shapes): the floor of its cost on this machine."""
    assert module.augself is not None
    views = module.augmenter(batch["image"], None, generator=torch.Generator(device).manual_seed(0))
    dim = module.method.backbone.dim
    feats = [torch.randn(len(batch["image"]), dim, device=device, requires_grad=True) for _ in range(2)]
    mms: list[tuple[Tensor, Tensor]] = []
    rows = 2 * len(batch["image"])  # both orders
    for head in module.augself.heads.values():
        for lin in (m for m in head if isinstance(m, nn.Linear)):
            out_f, in_f = lin.weight.shape
            a, w, g = (torch.randn(r, c, device=device) for r, c in ((rows, in_f), (in_f, out_f), (rows, out_f)))
            mms += [(a, w), (g, w.t()), (a.t(), g)]  # forward, grad input, grad weight

    def whole() -> None:
        loss, _ = module.augself(feats[0], feats[1], views[0].params, views[1].params, module.view_cfgs[0])
        loss.backward()

    def products() -> None:
        for a, b in mms:
            torch.mm(a, b)

    best = {}
    for name, fn in (("augself module", whole), ("its matrix products", products)):
        fn()
        times = []
        for _ in range(reps):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    return best


# ---- 5. lightly -----------------------------------------------------------------------------------------
def bench_lightly(args: argparse.Namespace, device: torch.device) -> float:
    """What a lightly user writes: SimCLRTransform in workers, NTXentLoss, a plain loop; same model."""
    from lightly.loss import NTXentLoss
    from lightly.transforms import SimCLRTransform
    from torchvision.datasets import ImageFolder

    transform = SimCLRTransform(
        input_size=32,
        cj_prob=0.8,
        cj_strength=0.5,  # x (0.8, 0.8, 0.8, 0.2) = (0.4, 0.4, 0.4, 0.1)
        min_scale=0.2,
        random_gray_scale=0.2,
        gaussian_blur=args.blur_p,
        hf_prob=0.5,
        normalize={"mean": list(MEAN), "std": list(STD)},
    )
    root = Path(args.data)
    dataset = ImageFolder(str(root / "train" if (root / "train").is_dir() else root), transform=transform)
    torch.manual_seed(0)
    model = SimCLR(build_backbone("small_cnn")).to(device).to(memory_format=torch.channels_last).train()
    criterion = NTXentLoss(temperature=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.03 * args.batch / 256, momentum=0.9, weight_decay=5e-4)
    batches = cycle(train_loader(args, dataset))
    times = []
    for _ in range(args.warmup + args.steps):
        (x0, x1), _labels = next(batches)
        x0 = x0.to(device, non_blocking=True, memory_format=torch.channels_last)
        x1 = x1.to(device, non_blocking=True, memory_format=torch.channels_last)
        z0 = model.projector(model.backbone(x0))
        z1 = model.projector(model.backbone(x1))
        loss = criterion(z0, z1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter())
    return throughput(times, args.warmup, args.batch)


# ---- report ---------------------------------------------------------------------------------------------
def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores available, torch {torch.__version__} with {torch.get_num_threads()} "
        f"intra-op threads, {platform.python_version()}"
    )


def fmt_ratio(value: float | None, target: str, ok: bool | None) -> tuple[str, str, str]:
    if value is None:
        return "", "", ""
    return f"{value:.2f}", target, "" if ok is None else ("yes" if ok else "**no**")


def report(rows: list[dict[str, Any]], info: str, args: argparse.Namespace, loads: list[str]) -> str:
    def med(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    bare, tr, man = med("bare"), med("trainer"), med("manual")
    tr_aug, light = med("trainer_augself"), med("lightly")
    eff = med("efficiency")
    over = med("overhead")
    over_e2e = med("overhead_e2e")
    vs_light = med("vs_lightly")
    lines = [
        f"| pipeline (batch {args.batch}, small_cnn, 2 x 32-px views) | images/s | ratio | target | met |",
        "|---|---:|---:|---:|:-:|",
    ]

    def row(name: str, ips: float | None, ratio: tuple[str, str, str] = ("", "", "")) -> None:
        lines.append(f"| {name} | {'' if ips is None else f'{ips:.0f}'} | {' | '.join(ratio)} |")

    row("bare step: backbone + projector on pre-made tensors", bare)
    row(
        "ours end to end (Trainer): pipeline efficiency vs bare",
        tr,
        fmt_ratio(eff, ">= 0.90", None if eff is None else eff >= 0.9),
    )
    if man is not None and bare is not None:
        row("ours end to end (manual loop, no Lightning) vs bare", man, fmt_ratio(man / bare, "", None))
    if over is not None:  # the small CNN: the heads alone cost ~5 % of its step, so no target (its floor below)
        lines.append(f"| AugSelf(crop, color) step time / without (fixed batches) |  | {over:.3f} |  |  |")
        if med("cpu_ratio") is not None:
            lines.append(f"| the same, process CPU time / without |  | {med('cpu_ratio'):.3f} |  |  |")
    for part in ("augself module", "its matrix products"):
        if med(part) is not None:
            lines.append(
                f"| {part} alone (fwd + bwd, best of reps) / step without: floor of the ratio |  | "
                f"{1 + med(part):.3f} |  |  |"
            )
    paper = med("overhead_paper")
    if paper is not None:
        what = f"{args.overhead_backbone} at {args.overhead_size} px, batch {args.overhead_batch}"
        lines.append(
            f"| AugSelf(crop, color) step time / without, {what} ({Path(args.overhead_config).name}, fixed "
            f"batches) |  | {paper:.3f} | <= 1.03 | {'yes' if paper <= 1.03 else '**no**'} |"
        )
        cpu = med("paper cpu_ratio")
        if cpu is not None:
            lines.append(
                f"| the same, process CPU time / without ({what}) |  | {cpu:.3f} | <= 1.03 | "
                f"{'yes' if cpu <= 1.03 else '**no**'} |"
            )
        for part in ("augself module", "its matrix products"):
            if med(f"paper {part}") is not None:
                lines.append(
                    f"| {what}: {part} alone / step without: floor of the ratio |  | "
                    f"{1 + med(f'paper {part}'):.3f} |  |  |"
                )
    if tr_aug is not None:
        row(
            "ours + AugSelf(crop, color) end to end (Trainer): time ratio vs without",
            tr_aug,
            fmt_ratio(over_e2e, "", None),
        )
    if light is not None:
        row(
            "lightly SimCLR end to end: ours (Trainer) / lightly",
            light,
            fmt_ratio(vs_light, ">= 1.5", None if vs_light is None else vs_light >= 1.5),
        )
    n = len(rows)
    head = [
        f"Machine: {info}. DataLoader workers: {args.workers}. Decoded-image cache: "
        f"{'on' if args.cache_mb > 0 else 'off'} (data.cache_mb={args.cache_mb}). Blur p: {args.blur_p}.",
        f"{args.steps} timed steps after {args.warmup} warm-up steps per measurement; "
        f"median of {n} repetition(s); ratios are taken within each repetition, then the median.",
        f"Load average (1 min) before each repetition: {', '.join(loads)}.",
        "",
    ]
    return "\n".join(head + lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10-small", help="ImageFolder root (train/ inside)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, every pipeline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--repeats", type=int, default=1, help="repetitions of the whole set; medians reported")
    p.add_argument("--cache-mb", type=int, default=None, help="data.cache_mb (default: the config default)")
    p.add_argument("--blur-p", type=float, default=0.0, help="Gaussian blur probability, both pipelines")
    p.add_argument("--overhead-reps", type=int, default=6)
    p.add_argument("--overhead-steps", type=int, default=3)
    p.add_argument("--overhead-backbone", default="resnet18", help="backbone of the paper-setting overhead stage")
    p.add_argument("--overhead-size", type=int, default=96, help="view size (px) of the paper-setting overhead stage")
    p.add_argument("--overhead-batch", type=int, default=32, help="images per step, paper-setting overhead stage")
    p.add_argument("--overhead-config", default=str(PAPER_CONFIG), help="config of the paper-setting overhead stage")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["bare", "trainer", "manual", "overhead", "trainer_augself", "lightly", "overhead_paper"],
    )
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.cache_mb is None:
        from augself.config import DataConfig

        args.cache_mb = DataConfig().cache_mb
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*self.log.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    device = torch.device(args.device)
    info = machine_info()
    print(info, flush=True)
    rows: list[dict[str, Any]] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            loads.append(f"{os.getloadavg()[0]:.2f}")
            r: dict[str, Any] = {}
            cfg0 = config(args, Path(tmp) / f"ours{rep}")
            cfg1 = config(args, Path(tmp) / f"augself{rep}", augself=True)
            paper0 = paper_config(args, Path(tmp) / f"paper{rep}")
            paper1 = paper_config(args, Path(tmp) / f"paper_augself{rep}", augself=True)
            stages: list[tuple[str, Callable[[], Any]]] = [
                ("bare", partial(bench_bare, args, cfg0, device)),
                ("trainer", partial(bench_trainer, args, cfg0)),
                ("lightly", partial(bench_lightly, args, device)),
                ("manual", partial(bench_manual, args, cfg0, device)),
                ("overhead", partial(bench_augself_overhead, args, cfg0, cfg1, device)),
                ("overhead_paper", partial(bench_augself_overhead, args, paper0, paper1, device)),
                ("trainer_augself", partial(bench_trainer, args, cfg1)),
            ]
            for name, fn in stages:
                if name in args.skip:
                    continue
                start = time.perf_counter()
                value = fn()
                if name.startswith("overhead"):
                    value, ratios, parts = value
                    print(f"  [{rep}] {name} ratios: {', '.join(f'{x:.3f}' for x in ratios)}", flush=True)
                    prefix = "paper " if name == "overhead_paper" else ""
                    cpu = parts.pop("cpu_ratios", None)
                    if cpu is not None:
                        print(f"  [{rep}] {name} CPU-time ratios: {', '.join(f'{x:.3f}' for x in cpu)}", flush=True)
                        print(f"  [{rep}] {name} CPU-time ratio (median): {parts['cpu_ratio']:.3f}", flush=True)
                    for part, frac in parts.items():
                        if part != "cpu_ratio":
                            print(f"  [{rep}] {prefix}{part} alone: {frac:.3f} of the step without", flush=True)
                        r[prefix + part] = frac
                r[name] = value
                unit = "" if name.startswith("overhead") else " images/s"
                took = time.perf_counter() - start
                print(f"  [{rep}] {name}: {value:.3f}{unit} ({took:.0f} s)", flush=True)
            if r.get("bare") and r.get("trainer"):
                r["efficiency"] = r["trainer"] / r["bare"]
            if r.get("trainer") and r.get("lightly"):
                r["vs_lightly"] = r["trainer"] / r["lightly"]
            if r.get("trainer") and r.get("trainer_augself"):
                r["overhead_e2e"] = r["trainer"] / r["trainer_augself"]
            rows.append(r)
    print()
    print(report(rows, info, args, loads))


if __name__ == "__main__":
    main()
