"""DataLoader throughput for variable-size photos: ours (``data.crop=full_image``) vs torchvision, per worker.

Generates JPEG photos in a temporary ImageFolder (default 300: half 500x375 landscape, half 375x500 portrait,
1/f "pink-noise" colour content with the spectrum of natural images, quality 90, about 110 kB each like ImageNet
JPEGs) and measures **source images per second per DataLoader worker** for

* ``ours``: :class:`augself.data.folder.FileListDataset` with ``use_full_image_crops`` (what ``data.crop=
  full_image`` runs): decode once (PIL / libjpeg-turbo), per view a RandomResizedCrop box on the whole image,
  crop + antialiased bilinear resize on uint8 (torch's uint8 kernel), uint8 views + the crop record returned;
* ``torchvision``: ``torchvision.datasets.ImageFolder`` with ``RandomResizedCrop(S)`` + ``ToTensor()`` per view,
  the reference's loader (AugSelf ``datasets.py``: ``MultiView(RandomResizedCrop(224, scale=(0.2, 1.0)))``, each
  view converted to float by ``to_tensor``); decode once per image, the transform applied once per view.

**The fair comparison for SSL is per image with 2 views each** (both pipelines decode an image once and cut two
views); the 1-view rows are printed too. Same batch size, same worker count (1 and 2), the same files; the
pipelines are interleaved over ``--rounds`` rounds; each row gives the median over rounds and the median of the
per-round ratios to torchvision. Two measures: wall-clock images/s divided by the worker count, and images per
second of the workers' own CPU time (``/proc/<pid>/stat``; independent of other load on a shared machine).
Target: ours >= 1.5x torchvision per worker at 224 px with 2 views.

``--reduced`` adds ours with ``data.decode: draft`` (JPEG DCT scaling when every view keeps >= its output size)
and an in-process check: how often reduced decoding applies, its speed per image, and the pixel difference to a
full decode of the same region (mean / max over all views), at ``--size`` and at 96 px (the STL-10 view size).

``--decode`` prints the pretraining loader with ``data.decode: exact`` (the default) and ``draft`` side by side,
for both ``data.crop`` modes (``full_image``: 2 views; ``centre_square``: one ``size``-px image per file, what the
device crop then reads), interleaved over ``--rounds``: images per second per worker (wall clock and worker CPU
time) and the draft / exact ratio; then the pixel difference of the ``centre_square`` image (the evaluation
preprocessing when exact) to torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on the fully decoded image:
mean over images of the per-image mean absolute difference, the worst image's mean, and the largest single
difference, in grey levels (/255). ``--folder`` reads an existing image folder instead of generating photos.

Usage::

    python benchmarks/loader_throughput.py                      # 300 photos, 224 px, workers 1 and 2
    python benchmarks/loader_throughput.py --images 600 --rounds 5 --reduced
    python benchmarks/loader_throughput.py --folder ../shared/data/dtd10-64 --size 32 --decode --no-loader
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.v2.functional as F2
from PIL import Image, features
from torch.utils.data import DataLoader, Dataset

from augself.augment.config import ViewConfig
from augself.data.folder import FileListDataset, find_images
from augself.data.imageio import draft_factor, resized_crops
from augself.data.registry import use_crop_mode


def pink_photo(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like RGB image: 1/f amplitude spectrum per channel, correlated colours, a little sensor noise."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    chans = []
    for _ in range(3):
        spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f
        chans.append(np.fft.irfft2(spec, s=(h, w)))
    x = np.stack(chans, -1) @ (rng.standard_normal((3, 3)) * 0.3 + np.eye(3))
    x = (x - x.mean()) / x.std()
    x = 128 + 45 * x + rng.normal(0, 4, x.shape)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def make_photos(root: Path, n: int, sizes: list[tuple[int, int]], quality: int = 90) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:05d}.jpg"
        pink_photo(*sizes[i % len(sizes)], rng).save(p, quality=quality)
        out.append(p)
    return out


class MultiView:
    """The reference's ``MultiView``: the same transform applied ``n`` times to the decoded image."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], n: int) -> None:
        self.transform, self.n = transform, n

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        return [self.transform(img) for _ in range(self.n)]


def build(kind: str, root: Path, size: int, views: int) -> Dataset:
    if kind == "torchvision":
        tf = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.ToTensor()])
        return torchvision.datasets.ImageFolder(str(root), transform=MultiView(tf, views))
    return pretrain_set(find_images(root), size, views, "full_image", "draft" if kind == "ours-reduced" else "exact")


def pretrain_set(paths: list[str], size: int, views: int, crop: str, decode: str) -> Dataset:
    """What ``augself pretrain`` reads from an image folder with ``data.crop`` / ``data.decode`` (``run.py``)."""
    cfgs = [ViewConfig(size=size, crop_scale=(0.2, 1.0))] * views
    return use_crop_mode(FileListDataset([(str(p), 0) for p in paths], size), crop, cfgs, decode)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes ``pids`` (Linux ``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def images_per_second(dataset: Dataset, workers: int, batch: int) -> tuple[float, float]:
    """One epoch through a DataLoader: (images per wall-clock second, images per worker CPU second).

    The clocks start when the first batch has arrived (worker start-up excluded) and count the remaining
    batches. The CPU figure uses the workers' own CPU time, so it does not depend on other load on the machine.
    """
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=True
    )
    it = iter(loader)
    next(it)
    pids = [w.pid for w in it._workers]  # type: ignore[attr-defined]
    cpu0, start, n = _cpu_seconds(pids), time.perf_counter(), 0
    for b in it:
        n += len(b["label"]) if isinstance(b, dict) else len(b[1])
    wall, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu0
    del it, loader
    return n / wall, n / max(cpu, 1e-9)


def decode_table(paths: list[Path], size: int, workers: list[int], batch: int, rounds: int) -> None:
    """``data.decode`` exact vs draft through the pretraining DataLoader, both crop modes, interleaved rounds."""
    print(
        f"\ndata.decode exact vs draft, pretraining loader ({len(paths)} images, {size} px, batch {batch}; "
        f"median of {rounds} interleaved rounds; ratio = draft / exact, median of per-round ratios):"
    )
    print(f"{'data.crop':<15}{'workers':>8}{'exact img/s/w':>15}{'draft img/s/w':>15}{'ratio':>8}{'CPU ratio':>11}")
    for crop, views in (("full_image", 2), ("centre_square", 1)):
        for w in workers:
            runs: dict[str, list[tuple[float, float]]] = {"exact": [], "draft": []}
            for _ in range(rounds):
                for decode in runs:
                    ds = pretrain_set(paths, size, views, crop, decode)  # type: ignore[arg-type]
                    wall, cpu = images_per_second(ds, w, batch)
                    runs[decode].append((wall / max(w, 1), cpu))
            ex, dr = runs["exact"], runs["draft"]
            ratio = statistics.median(d[0] / e[0] for d, e in zip(dr, ex, strict=True))
            cpu_ratio = statistics.median(d[1] / e[1] for d, e in zip(dr, ex, strict=True))
            print(
                f"{crop:<15}{w:>8}{statistics.median(e[0] for e in ex):>15.0f}"
                f"{statistics.median(d[0] for d in dr):>15.0f}{ratio:>7.2f}x{cpu_ratio:>10.2f}x"
            )
    print("in process, 1 thread, CPU time per image (min of rounds; independent of other load on the machine):")
    torch.set_num_threads(1)
    for crop, views in (("full_image", 2), ("centre_square", 1)):
        ms = {}
        for decode in ("exact", "draft"):
            ds = pretrain_set(paths, size, views, crop, decode)  # type: ignore[arg-type]
            ms[decode] = min(_cpu_ms_per_item(ds) for _ in range(rounds))
        print(
            f"  {crop:<14} exact {ms['exact']:.3f} ms, draft {ms['draft']:.3f} ms: "
            f"draft {ms['exact'] / ms['draft']:.2f}x as fast"
        )


def _cpu_ms_per_item(ds: Dataset) -> float:
    torch.manual_seed(0)
    start = time.process_time()
    for i in range(len(ds)):  # type: ignore[arg-type]
        ds[i]
    return (time.process_time() - start) / len(ds) * 1e3  # type: ignore[arg-type]


def torchvision_pixel_check(paths: list[Path], size: int) -> None:
    """``centre_square`` images (exact and draft decode) against torchvision ``Resize + CenterCrop`` (grey levels)."""
    tv = T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])
    sets = {d: pretrain_set(paths, size, 1, "centre_square", d) for d in ("exact", "draft")}
    diffs: dict[str, list[float]] = {d: [] for d in sets}
    worst = dict.fromkeys(sets, 0.0)
    for i, p in enumerate(paths):
        with open(p, "rb") as f:
            ref = tv(Image.open(f).convert("RGB")).float()
        for d, ds in sets.items():
            diff = (ds[i]["image"].float() - ref).abs()
            diffs[d].append(float(diff.mean()))
            worst[d] = max(worst[d], float(diff.max()))
    print(f"\ncentre_square image vs torchvision Resize({size}) + CenterCrop({size}), grey levels (/255):")
    for d in sets:
        print(
            f"  decode {d:<6} mean {statistics.fmean(diffs[d]):.2f}, worst image {max(diffs[d]):.1f}, "
            f"largest {worst[d]:.0f}"
        )


def reduced_check(paths: list[Path], size: int, n_views: int = 2) -> dict[str, float]:
    """In-process (1 thread): share of images where reduced decoding applies, CPU time per image full vs reduced,
    and the pixel difference (grey levels) of the reduced views to a full decode of the same snapped region."""
    torch.manual_seed(0)
    cfg = ViewConfig(size=size)
    sampler = FileListDataset([], size).use_full_image_crops([cfg] * n_views)
    boxes_of = {p: None for p in paths}
    applied, diffs, maxdiff = 0, [], 0.0
    for p in paths:
        with Image.open(p) as im:
            W, H = im.size
        boxes = sampler._sample_boxes(H, W)
        boxes_of[p] = boxes
        s = draft_factor(boxes, [size] * n_views)
        if s == 1:
            continue
        applied += 1
        red, rec = resized_crops(p, lambda h, w, b=boxes: b, [size] * n_views, reduced_decode=True)
        with Image.open(p) as im:
            full = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()
        dh, dw = -(-H // s), -(-W // s)
        for v in range(n_views):
            t, l, h, w = (round(float(x)) for x in rec[v].double() * torch.tensor([dh, dw, dh, dw]))
            same = F2.resized_crop(full, t * s, l * s, min(h * s, H - t * s), min(w * s, W - l * s), [size, size])
            d = (red[v].float() - same.float()).abs()
            diffs.append(float(d.mean()))
            maxdiff = max(maxdiff, float(d.max()))

    def per_image(reduced: bool) -> float:  # CPU time of this process (1 thread): robust to other load
        start = time.process_time()
        for p in paths:
            resized_crops(p, lambda h, w, b=boxes_of[p]: b, [size] * n_views, reduced_decode=reduced)
        return (time.process_time() - start) / len(paths) * 1e3

    per_image(False)  # warm the page cache
    t_full = min(per_image(False) for _ in range(2))
    t_red = min(per_image(True) for _ in range(2))
    return {
        "applies": applied / len(paths),
        "ms_full": t_full,
        "ms_reduced": t_red,
        "mean_diff": statistics.fmean(diffs) if diffs else float("nan"),
        "max_diff": maxdiff,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, help="generated photos (default 300) / a seeded subset of --folder (all)")
    p.add_argument("--size", type=int, default=224, help="view size (px)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reduced", action="store_true", help="also ours with data.decode=draft (+ its pixel check)")
    p.add_argument("--decode", action="store_true", help="data.decode exact vs draft side by side (+ pixel check)")
    p.add_argument("--folder", type=Path, help="read this image folder (recursively) instead of generated photos")
    p.add_argument("--no-loader", action="store_true", help="skip the DataLoader comparison (only --reduced's check)")
    p.add_argument("--photo-sizes", default="500x375,375x500", help="comma-separated WxH of the generated photos")
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.photo_sizes.split(",")]
    kinds = ["ours", "torchvision"] + (["ours-reduced"] if args.reduced else [])
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__} "
        f"(libjpeg-turbo {features.version('libjpeg_turbo') or 'no'}), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder is not None:
            root = args.folder
            paths = [Path(q) for q in find_images(root)]
            if args.images is not None and args.images < len(paths):
                keep = np.random.default_rng(0).choice(len(paths), args.images, replace=False)
                paths = [paths[i] for i in sorted(keep)]
            what = f"images of {root}"
        else:
            root = Path(tmp) / "photos"
            paths = make_photos(root, args.images or 300, sizes)  # type: ignore[arg-type]
            what = f"JPEG photos {args.photo_sizes} q90"
        kb = statistics.fmean(q.stat().st_size for q in paths) / 1024
        print(
            f"{len(paths)} {what}, mean {kb:.0f} kB; view {args.size} px, "
            f"batch {args.batch}, {args.rounds} interleaved rounds (median)"
        )
        wall: dict[tuple[str, int, int], list[float]] = {}
        cpu: dict[tuple[str, int, int], list[float]] = {}
        for _ in range(0 if args.no_loader else args.rounds):
            for workers in args.workers:
                for views in (2, 1):
                    for kind in kinds:
                        w, c = images_per_second(build(kind, root, args.size, views), workers, args.batch)
                        wall.setdefault((kind, workers, views), []).append(w / workers)
                        cpu.setdefault((kind, workers, views), []).append(c)
        if not args.no_loader:
            print(
                f"\n{'pipeline':<14}{'workers':>8}{'views':>6}{'img/s/worker':>14}{'ratio':>8}"
                f"{'img/CPU-s':>11}{'ratio':>8}   (ratio: vs torchvision, same workers and views; median of rounds)"
            )
        for workers in [] if args.no_loader else args.workers:
            for views in (2, 1):
                for kind in kinds:
                    row = f"{kind:<14}{workers:>8}{views:>6}"
                    for table in (wall, cpu):
                        mine, ref = table[(kind, workers, views)], table[("torchvision", workers, views)]
                        ratio = statistics.median(m / r for m, r in zip(mine, ref, strict=True))
                        row += f"{statistics.median(mine):>{14 if table is wall else 11}.1f}{ratio:>7.2f}x"
                    print(row)
        if args.decode:
            decode_table(paths, args.size, args.workers, args.batch, args.rounds)
            torchvision_pixel_check(paths, args.size)
        if args.reduced:
            torch.set_num_threads(1)
            print(
                "\ndata.decode=draft (full_image), in process (1 thread, 2 views; pixel difference to a full decode "
                "of the same snapped region, grey levels 0-255):"
            )
            for size in dict.fromkeys((args.size, 96)):
                r = reduced_check(paths, size)
                print(
                    f"  {size:>3} px: applies to {100 * r['applies']:.0f} % of images; {r['ms_full']:.2f} -> "
                    f"{r['ms_reduced']:.2f} CPU ms/image ({r['ms_full'] / r['ms_reduced']:.2f}x); difference mean "
                    f"{r['mean_diff']:.2f}, max {r['max_diff']:.0f}"
                )


if __name__ == "__main__":
    main()
