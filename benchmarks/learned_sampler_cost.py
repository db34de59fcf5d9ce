"""Cost of learned per-input augmentations (InstaAug, issue 16): training step time, fixed sampler vs learned.

One process, one configuration, five arms that differ only in the sampler: ``fixed`` (every augmentation drawn
from its fixed ranges) and ``augment.learned`` with ``crop``, ``angle``, ``color`` or ``all`` three (the invariance
module at the reference's defaults, :mod:`augself.augment.learned.config`). The configuration: SimCLR (per-anchor
NT-Xent losses, so the learned crop's REINFORCE term has its per-sample losses) with the ``--backbone`` at ``--size``
px, batch ``--batch``, the default SimCLR views plus ``augment.angle_p=1`` (so the fixed arm applies the same
rotation op that the learned angle feeds) on generated images (``synthetic``, made once, no loading in the timing).

A step is what :class:`augself.train.module.PretrainModule` runs for a batch (augmentation on the device inside
the step, the invariance module's forward, the method's loss, the module's extra loss), then backward and the
optimiser step; all arms' optimisers are the config's, with the module's parameters in it. Arms are timed in
interleaved repetitions (the order rotates each repetition), ``--steps`` steps each after two warm-up steps; the
table gives the median step time and the median over repetitions of each arm's time / the fixed arm's time in the
same repetition (wall clock, and on CPU the process's CPU time, which other processes on a busy machine do not
inflate; exact with one intra-op thread, ``--threads 1``, the default on CPU).

Then the parts of the learned step, each alone on the ``all`` module with the step's batch (best of
``--repeats``), as a fraction of the fixed step time:

* ``invariance net forward + backward``: :meth:`LearnedAugment.distributions` of the batch and the backward of a
  scalar of all its outputs (what any family costs at least);
* ``sampling + REINFORCE / entropy bookkeeping``: per view :meth:`LearnedAugment.sample_into` (the crop's
  inverse-CDF draw and boxes, the angle and colour draws) and :class:`LearnedObjective` forward + backward, from
  distributions that are leaves (so the net is not in it);
* ``out-of-place (differentiable) view path``: the extra time of the views' ops forward + backward on the
  differentiable path that a learned angle / colour needs (colour jitter out of place, no CPU chunking, each later
  op on a copy; ``Augmenter._apply_differentiable``) over the fast in-place path of the fixed sampler, same records.

Usage::

    python benchmarks/learned_sampler_cost.py                      # small_cnn, 32 px, batch 256, CPU
    python benchmarks/learned_sampler_cost.py --backbone resnet18 --repeats 3 --steps 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augself.augment.learned import LearnedAugment, LearnedObjective
from augself.augment.learned.sampler import LearnedDists
from augself.augment.pipeline import Augmenter
from augself.config import PretrainConfig, load_config
from augself.data.registry import build_dataset
from augself.train.module import PretrainModule
from augself.train.optim import build_optimizer, param_groups

ARMS: dict[str, str | None] = {
    "fixed": None,
    "crop": "augment.learned={crop: {}}",
    "angle": "augment.learned={angle: {}}",
    "color": "augment.learned={color: {}}",
    "all": "augment.learned={crop: {}, angle: {}, color: {}}",
}
"""Arm -> the override that turns its learned sampler on (reference defaults of every family)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def arm_config(args: argparse.Namespace, out: Path, arm: str) -> PretrainConfig:
    """The benchmark configuration (module docstring) with ``arm``'s sampler."""
    accel = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = [
        f"out={out}",
        "method=simclr",
        "data.name=synthetic",
        f"data.size={args.size}",
        "data.num_workers=0",
        f"model.backbone={args.backbone}",
        f"augment.size={args.size}",
        "augment.angle_p=1.0",
        f"trainer.batch_size={args.batch}",
        f"trainer.accelerator={accel}",
        "trainer.devices=1",
        "monitor.online_probe=false",
    ]
    extra = ARMS[arm]
    return load_config(None, [*overrides, *([extra] if extra else [])])


def make_step(cfg: PretrainConfig, batch: dict[str, Tensor], device: torch.device) -> tuple[PretrainModule, Callable]:
    """The arm's module and one training step (training_step, backward, optimiser step) on ``batch``."""
    torch.manual_seed(0)
    module = PretrainModule(cfg, None).to(device).train()
    o = cfg.optim
    groups = param_groups(module, o.weight_decay, o.exclude_norm_bias)
    opt = build_optimizer(o.name, groups, o.base_lr, o.momentum, o.weight_decay, o.betas, o.lars_eta)

    def step(i: int) -> None:
        loss = module.training_step(batch, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return module, step


def best_time(fn: Callable[[], Any], reps: int, device: torch.device) -> float:
    """Seconds of ``fn`` (best of ``reps`` after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def learned_parts(module: PretrainModule, images: Tensor, reps: int, device: torch.device) -> dict[str, float]:
    """Seconds of each part of the learned step alone (module docstring), on the ``all`` arm's module."""
    learned, objective = module.learned, module.learned_objective
    assert isinstance(learned, LearnedAugment) and isinstance(objective, LearnedObjective)
    aug: Augmenter = module.augmenter
    n_views = module.n_method_views
    B = images.shape[0]

    def net() -> None:
        d = learned.distributions(images)
        total = sum(t.sum() for t in (d.crop_logp, d.angle_lo, d.angle_hi, d.color_lo, d.color_hi) if t is not None)
        total.backward()  # type: ignore[union-attr]

    with torch.no_grad():
        base = learned.distributions(images)

    def leaves() -> LearnedDists:
        def leaf(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach().requires_grad_()

        return LearnedDists(
            base.input_size, leaf(base.crop_logp), leaf(base.angle_lo), leaf(base.angle_hi),
            leaf(base.color_lo), leaf(base.color_hi),
        )  # fmt: skip

    gen = torch.Generator(device).manual_seed(0)
    params = [
        aug.sample(i, B, generator=gen, device=device, input_size=tuple(images.shape[-2:])) for i in range(n_views)
    ]
    per_sample = torch.rand(n_views, B, device=device)

    def bookkeeping() -> None:
        d = leaves()
        draws = [learned.sample_into(d, p, gen) for p in params]
        loss, _ = objective(per_sample, draws, 0.0)
        loss.backward()

    d0 = leaves()
    for p in params:  # the records now hold grad-carrying angle / colour values
        learned.sample_into(d0, p, gen)
    records = params

    def differentiable() -> None:
        xs = [
            Augmenter._apply_differentiable(images, p, p.crop, cfg) for p, cfg in zip(records, aug.views, strict=False)
        ]
        sum(x.sum() for x in xs).backward(retain_graph=True)

    detached = [type(p)(cfg=p.cfg, **{k: v.detach() for k, v in p.as_dict().items()}) for p in records]

    def fast() -> None:  # the fixed sampler's views need no graph: forward only
        for q, cfg in zip(detached, aug.views, strict=False):
            aug._apply_view(images, q, q.crop, cfg)

    t_diff = best_time(differentiable, reps, device)
    t_fast = best_time(fast, reps, device)
    return {
        "invariance net forward + backward": best_time(net, reps, device),
        "sampling + REINFORCE / entropy bookkeeping": best_time(bookkeeping, reps, device),
        "out-of-place (differentiable) view path, extra": max(0.0, t_diff - t_fast),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    return f"{platform.system()} {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} intra-op thread(s)"


def run(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "fixed" not in arms:
        raise SystemExit(f"--arms must include fixed and name arms of {', '.join(ARMS)}; got {args.arms!r}")
    tmp = Path(tempfile.mkdtemp(prefix="learned-cost-"))
    cfgs = {a: arm_config(args, tmp / a, a) for a in arms}
    ds = build_dataset("synthetic", "train", size=args.size, seed=0, n=args.batch)
    images = torch.stack([ds[i]["image"] for i in range(args.batch)]).to(device)
    batch = {"image": images, "source_crop": torch.tensor([[0.0, 0.0, 1.0, 1.0]] * args.batch, device=device)}
    modules, steps = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning: self.log outside a Trainer
        for a in arms:
            modules[a], steps[a] = make_step(cfgs[a], batch, device)
            for i in range(2):  # warm-up
                steps[a](i)
        wall: dict[str, list[float]] = {a: [] for a in arms}
        cpu: dict[str, list[float]] = {a: [] for a in arms}
        for rep in range(args.repeats):
            order = arms[rep % len(arms) :] + arms[: rep % len(arms)]
            for a in order:
                sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                for i in range(args.steps):
                    steps[a](i)
                sync(device)
                wall[a].append((time.perf_counter() - t0) / args.steps)
                cpu[a].append((time.process_time() - c0) / args.steps)
        parts = learned_parts(modules["all"], images, args.repeats, device) if "all" in modules else {}
    fixed = statistics.median(wall["fixed"])
    lines = [
        f"# learned sampler cost: SimCLR, {args.backbone} at {args.size} px, batch {args.batch}, {device.type}",
        "",
        f"{machine()}; {args.repeats} interleaved repetitions x {args.steps} steps per arm",
        "",
        "| arm | step (ms, median) | ratio to fixed (wall, median) | ratio (CPU time, median) |",
        "|---|---:|---:|---:|",
    ]
    for a in arms:
        r_wall = statistics.median(w / f for w, f in zip(wall[a], wall["fixed"], strict=True))
        r_cpu = statistics.median(c / f for c, f in zip(cpu[a], cpu["fixed"], strict=True))
        cpu_cell = f"{r_cpu:.3f}" if device.type == "cpu" else "n/a"
        lines.append(f"| {a} | {1000 * statistics.median(wall[a]):.1f} | {r_wall:.3f} | {cpu_cell} |")
    if parts:
        lines += [
            "",
            "| part of the learned step (all families), alone | ms | fraction of the fixed step |",
            "|---|---:|---:|",
        ]
        for k, v in parts.items():
            lines.append(f"| {k} | {1000 * v:.1f} | {v / fixed:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="small_cnn", help="small_cnn (default) or resnet18, ...")
    p.add_argument("--size", type=int, default=32, help="image and view side (default 32)")
    p.add_argument("--batch", type=int, default=256, help="images per step (default 256)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per arm and repetition (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms (default {','.join(ARMS)})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads on CPU (default 1: exact CPU time)")
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    text = run(args)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
