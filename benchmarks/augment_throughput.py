"""Throughput of the batched, parameter-recording augmenter vs per-sample torchvision and kornia.

Two views per image, SimCLR defaults + blur (AugSelf, Lee et al., NeurIPS 2021, App. A): random resized crop
(0.2, 1.0), flip 0.5, colour jitter (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale 0.2, Gaussian blur p=0.5 sigma
(0.1, 2.0), normalise. Compared on the same uint8 input:

* ours:        ``Augmenter`` on the whole batch in the main process (``--threads`` intra-op threads);
* torchvision: ``transforms.v2`` per sample inside ``DataLoader`` workers (``--workers``, default 2);
* kornia:      ``AugmentationSequential`` on the whole batch in the main process.

Each round measures the three pipelines back to back on the same images; ``--rounds`` rounds are interleaved
and the best round of each pipeline is reported (the least disturbed by other processes on a shared machine).
torch's default OpenMP wait policy is kept (what a user gets); on heavily shared cores ``OMP_WAIT_POLICY=PASSIVE``
(idle intra-op threads sleep instead of spinning) can be set by hand, and the table records it. It slows the
batched pipelines on a quiet machine (96 px, 2 threads: ~770 vs ~1150 img/s in one side-by-side check).

Usage::

    python benchmarks/augment_throughput.py --sizes 32 96 --batch 256 --iters 10
    python benchmarks/augment_throughput.py --threads 1 --workers 1    # per-core comparison
    python benchmarks/augment_throughput.py --data ../shared/data/cifar10-small
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from augself.augment import AugmentConfig, Augmenter, ViewConfig

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)


def load_images(data: str | None, size: int, n: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, size, size): random pixels, or the first ``n`` images of an ImageFolder resized."""
    if data is None:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    root = Path(data)
    root = root / "train" if (root / "train").is_dir() else root
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not files:
        raise SystemExit(f"no images under {root}")
    files = files[:: max(1, len(files) // n)][:n]
    imgs = [pil_to_tensor(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in files]
    out = torch.stack(imgs)
    reps = -(-n // out.shape[0])
    return out.repeat(reps, 1, 1, 1)[:n]


def view_config(size: int) -> ViewConfig:
    return ViewConfig(size=size, mean=MEAN, std=STD)


class TwoViews(Dataset):
    """Per-sample torchvision v2 pipeline producing two views (the standard DataLoader-worker setup)."""

    def __init__(self, images: torch.Tensor, size: int, kernel: int, length: int | None = None) -> None:
        from torchvision.transforms import v2

        self.images = images
        self.length = length if length is not None else images.shape[0]
        self.t = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=False),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(0.2),
                v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
                v2.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i % self.images.shape[0]]
        return self.t(x), self.t(x)


def kornia_pipeline(size: int, kernel: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    import kornia.augmentation as K

    seq = K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=0.5),
        K.Normalize(torch.tensor(MEAN), torch.tensor(STD)),
    )

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        xf = x.float().div_(255.0)
        return [seq(xf), seq(xf)]

    return run


def time_batched(fn: Callable[[torch.Tensor], object], images: torch.Tensor, batch: int, iters: int) -> float:
    """Images/s of ``fn`` on random batches (median over iterations, after one warm-up)."""
    g = torch.Generator().manual_seed(1)
    times = []
    for it in range(iters + 1):
        idx = torch.randint(0, images.shape[0], (batch,), generator=g)
        x = images[idx]
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if it > 0:
            times.append(time.perf_counter() - t)
    times.sort()
    return batch / times[len(times) // 2]


def time_torchvision(images: torch.Tensor, size: int, kernel: int, batch: int, iters: int, workers: int) -> float:
    """Images/s of the per-sample pipeline in ``workers`` DataLoader workers (steady state).

    The first ``2 * workers + 1`` batches (worker start-up and the prefetched queue) are not timed; the
    dataset is long enough that no epoch boundary falls inside the timed batches.
    """
    warm = 2 * max(workers, 1) + 1
    ds = TwoViews(images, size, kernel, length=batch * (warm + iters))
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        prefetch_factor=2 if workers > 0 else None,
    )
    it = iter(loader)
    for _ in range(warm):
        next(it)
    t = time.perf_counter()
    for _ in range(iters):
        next(it)
    return iters * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 96])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=None, help="ImageFolder root (e.g. ../shared/data/cifar10-small)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of the main process")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for torchvision")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best round is reported")
    ap.add_argument("--skip", nargs="*", default=[], choices=["torchvision", "kornia"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    for size in args.sizes:
        images = load_images(args.data, size, max(4 * args.batch, 1024))
        cfg = view_config(size)
        kernel = cfg.blur_kernel
        aug = Augmenter(AugmentConfig(views=[cfg, cfg]))
        dev_images = images.to(device)
        kornia_fn = None if "kornia" in args.skip else kornia_pipeline(size, kernel)
        best = {"ours": 0.0, "tv": 0.0, "kornia": 0.0}
        for r in range(args.rounds):
            ours = time_batched(lambda x, a=aug: a(x), dev_images, args.batch, args.iters)
            best["ours"] = max(best["ours"], ours)
            line = f"[{size}px round {r + 1}/{args.rounds}] ours {ours:.0f}"
            if "torchvision" not in args.skip:
                tv = time_torchvision(images, size, kernel, args.batch, args.iters, args.workers)
                best["tv"] = max(best["tv"], tv)
                line += f"  torchvision {tv:.0f}"
            if kornia_fn is not None:
                kn = time_batched(kornia_fn, dev_images, args.batch, max(3, args.iters // 2))
                best["kornia"] = max(best["kornia"], kn)
                line += f"  kornia {kn:.0f}"
            print(line + " images/s", flush=True)
        rows.append((size, *(v if v > 0 else float("nan") for v in best.values())))

    src = args.data or "random uint8"
    print(
        f"\ninput: {src}; batch {args.batch}; two views; device {device}; threads {args.threads}; "
        f"torchvision workers {args.workers}; best of {args.rounds} interleaved rounds; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| size | ours (img/s) | torchvision v2 per-sample (img/s) | kornia (img/s) | ours/torchvision | ours/kornia |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, ours, tv, kn in rows:
        print(f"| {size} | {ours:.0f} | {tv:.0f} | {kn:.0f} | {ours / tv:.2f}x | {ours / kn:.2f}x |")


if __name__ == "__main__":
    main()
