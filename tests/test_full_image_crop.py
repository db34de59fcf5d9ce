"""``data.crop=full_image``: RandomResizedCrop on the whole original image, cut in the DataLoader, recorded in the
original's frame, reproduced from the record; the reference's crop statistics on a landscape photo."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as F2
from PIL import Image

from augself.augment.config import ViewConfig
from augself.augment.pipeline import Augmenter, compose_crop
from augself.augment.sample import CROP_TRIES, random_resized_crop_box, sample_crop
from augself.data.folder import FileListDataset
from augself.data.imageio import crop_box, draft_factor, resized_crops
from augself.data.registry import use_crop_mode

N_U = 2 * CROP_TRIES + 2


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth random colour field plus mild noise (JPEG-friendly, every region different)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 16), max(2, w // 16), 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.float64)
    return Image.fromarray(np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8))


def _decoded(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def _pixels(crop: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """Record [top, left, h, w] (fractions) -> integer pixels; the record must sit on the pixel grid."""
    px = crop.double() * torch.tensor([height, width, height, width], dtype=torch.float64)
    assert torch.allclose(px, px.round(), atol=1e-3), px
    t, l, h, w = (int(v) for v in px.round().tolist())
    return t, l, h, w


# ---- sampling semantics -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "cfg"),
    [((375, 500), ViewConfig()), ((500, 375), ViewConfig(crop_scale=(0.08, 1.0))), ((40, 200), ViewConfig())],
)
def test_scalar_box_is_the_vectorised_sampler(size: tuple[int, int], cfg: ViewConfig) -> None:
    """The worker's scalar sampler gives the augmenter's boxes on the same uniforms (incl. the central fallback,
    reached on the 40x200 image for most samples). Float32 (vectorised) vs float64 (scalar) arithmetic could move a
    rounded side across .5 with probability ~1e-4 per box, so at most 2 of 2000 boxes may differ."""
    B = 2000
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    boxes = sample_crop(cfg, B, generator=gen, input_size=size)
    gen.set_state(state)
    u = torch.cat(
        [torch.rand((B, CROP_TRIES), generator=gen) for _ in range(2)] + [torch.rand((B, 2), generator=gen)], 1
    )
    H, W = size
    scalar = torch.tensor(
        [random_resized_crop_box(H, W, cfg.crop_scale, cfg.crop_ratio, row) for row in u.double().tolist()],
        dtype=torch.float64,
    )
    vec = (boxes.double() * torch.tensor([H, W, H, W])).round()
    assert int((scalar != vec).any(1).sum()) <= 2
    if size == (40, 200):  # the fallback: central crop with the ratio clamped to 4/3
        assert bool((scalar == torch.tensor([0.0, 73.0, 40.0, 53.0])).all(1).any())


def test_scalar_box_needs_the_right_number_of_uniforms() -> None:
    with pytest.raises(ValueError, match="22 uniforms"):
        random_resized_crop_box(10, 10, (0.2, 1.0), (0.75, 4 / 3), [0.5] * 3)


def test_crop_centres_spread_over_the_whole_long_side() -> None:
    """500x375 landscape: the std of the crop-centre x (fraction of the width) equals torchvision's
    ``RandomResizedCrop.get_params`` on the full image (the reference), within 5 standard errors of the difference of
    two independent std estimates (SE of a sample std: sqrt((m4 - s^4) / (4 s^2 N))); the centre-square path
    (256-px square, then the crop) is far outside that band. Crops touch both sides of the image."""
    H, W, N = 375, 500, 4000
    ds = FileListDataset([], 32).use_full_image_crops([ViewConfig(size=224)])
    torch.manual_seed(0)
    ours = torch.tensor([ds._sample_boxes(H, W)[0] for _ in range(N)], dtype=torch.float64)
    ref = torch.tensor(
        [T.RandomResizedCrop.get_params(torch.empty(3, H, W), (0.2, 1.0), (3 / 4, 4 / 3)) for _ in range(N)],
        dtype=torch.float64,
    )

    def cx(b: torch.Tensor) -> torch.Tensor:
        return (b[:, 1] + b[:, 3] / 2) / W

    def std_and_se(x: torch.Tensor) -> tuple[float, float]:
        c = x - x.mean()
        s2, m4 = float((c**2).mean()), float((c**4).mean())
        return math.sqrt(s2), math.sqrt(max(m4 - s2**2, 0.0) / (4 * s2 * len(x)))

    s_ours, se_ours = std_and_se(cx(ours))
    s_ref, se_ref = std_and_se(cx(ref))
    band = 5 * math.hypot(se_ours, se_ref)
    assert abs(s_ours - s_ref) < band, (s_ours, s_ref, band)
    assert abs(float(cx(ours).mean()) - 0.5) < 5 * s_ref / math.sqrt(N)
    assert bool((ours[:, 1] == 0).any()) and bool((ours[:, 1] + ours[:, 3] == W).any())
    # the old centre-square path: crop of the 256-px square, composed into the original's frame
    t, l, h, w = crop_box(W, H, 256)
    square = sample_crop(ViewConfig(size=224), N, input_size=(256, 256))
    composed = compose_crop(square, torch.tensor([[t, l, h, w]]).expand(N, 4))
    s_sq = float((composed[:, 1] + composed[:, 3] / 2).double().std())
    assert s_ref - s_sq > 3 * band, (s_sq, s_ref)  # 0.069 vs 0.119: issue 12's numbers


# ---- decoding, record, reproduction -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photos")
    out = {}
    for name, (w, h), fmt in (("land", (500, 375), "JPEG"), ("port", (375, 500), "JPEG"), ("png", (90, 50), "PNG")):
        p = root / f"{name}.{fmt.lower().replace('jpeg', 'jpg')}"
        _photo(w, h, seed=len(out)).save(p, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out[name] = p
    big = root / "big.jpg"
    _photo(1200, 900, seed=9).save(big, "JPEG", quality=90)
    out["big"] = big
    return out


@pytest.mark.parametrize("name", ["land", "port", "png"])
def test_views_are_torchvision_resized_crops_of_the_recorded_box(photos: dict[str, Path], name: str) -> None:
    """Each view equals torchvision's ``resized_crop`` (antialiased, uint8 tensor path: the same torch kernel) of the
    full decoded image at the recorded box, exactly; and torchvision's PIL path (the reference's) within 1 grey level.
    The record is in fractions of the original image and on its pixel grid."""
    full = _decoded(photos[name])
    _, H, W = full.shape
    views = [ViewConfig(size=224), ViewConfig(size=32, crop_scale=(0.08, 0.5))]
    ds = FileListDataset([(str(photos[name]), 3)], 16).use_full_image_crops(views)
    pil = Image.open(photos[name]).convert("RGB")
    for _ in range(3):
        s = ds[0]
        assert set(s) == {"views", "view_crops", "label"} and s["label"] == 3
        assert s["view_crops"].dtype == torch.float32 and s["view_crops"].shape == (2, 4)
        for v, cfg in enumerate(views):
            x = s["views"][v]
            assert x.dtype == torch.uint8 and x.shape == (3, cfg.size, cfg.size)
            t, l, h, w = _pixels(s["view_crops"][v], H, W)
            assert t >= 0 and t + h <= H and l >= 0 and l + w <= W
            assert torch.equal(x, F2.resized_crop(full, t, l, h, w, [cfg.size, cfg.size], antialias=True))
            p = torch.from_numpy(np.array(TF.resized_crop(pil, t, l, h, w, [cfg.size, cfg.size]))).permute(2, 0, 1)
            assert int((x.int() - p.int()).abs().max()) <= 1


def test_augmenter_records_the_provided_crop_and_apply_reproduces_the_views(photos: dict[str, Path]) -> None:
    """Batched after-crop ops on DataLoader crops: ``params.crop`` is the original-frame record; re-cropping the
    original with it (torchvision) and applying the recorded parameters gives the same views (float32 rounding)."""
    views = [ViewConfig(size=48, blur_p=1.0, sol_p=0.5), ViewConfig(size=40, rot_p=1.0)]
    ds = FileListDataset([(str(photos["land"]), 0), (str(photos["port"]), 1)] * 3, 16).use_full_image_crops(views)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    aug = Augmenter.from_views(*views)
    out = aug.forward_cropped(batch["views"], batch["view_crops"], generator=torch.Generator().manual_seed(0))
    fulls = [_decoded(photos["land"]), _decoded(photos["port"])]
    for v, (view, cfg) in enumerate(zip(out, views, strict=True)):
        assert torch.equal(view.params.crop, batch["view_crops"][:, v])
        recut = []
        for b in range(len(ds)):
            full = fulls[b % 2]
            t, l, h, w = _pixels(view.params.crop[b], *full.shape[1:])
            recut.append(F2.resized_crop(full, t, l, h, w, [cfg.size, cfg.size], antialias=True))
        again = aug.apply(torch.stack(recut), view.params, v, source_crop=view.params.crop)
        assert torch.allclose(again, view.image, atol=1e-5)
    # the after-crop draws are those of forward(): same generator, same flips / colours / blur
    ref = aug(batch["views"][0], generator=torch.Generator().manual_seed(0))[0].params
    assert torch.equal(ref.flip, out[0].params.flip) and torch.equal(ref.color, out[0].params.color)


def test_forward_cropped_in_cpu_chunks_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large CPU views go through the chunked path (grouped by hue position); with the crop skipped it gives the
    one-pass result (float32 rounding), for uint8 and float inputs alike, and leaves a float input untouched."""
    import augself.augment.pipeline as pipeline

    cfgs = [ViewConfig(size=24, color_p=1.0, gray_p=0.5, blur_p=0.5, sol_p=0.3, rot_p=0.5)] * 2
    aug = Augmenter.from_views(*cfgs)
    gen = torch.Generator().manual_seed(3)
    views = [torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8, generator=gen) for _ in range(2)]
    crops = torch.rand(16, 2, 4, generator=gen)
    one = aug.forward_cropped(views, crops, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * 3 * 24 * 24 * 3)  # chunks of 3 samples
    floats = [v.float() / 255 for v in views]
    kept = [f.clone() for f in floats]
    for x in (views, floats):
        chunked = aug.forward_cropped(x, crops, generator=torch.Generator().manual_seed(0))
        for a, b in zip(one, chunked, strict=True):
            assert torch.allclose(a.image, b.image, atol=1e-5) and torch.equal(a.params.crop, b.params.crop)
    assert all(torch.equal(f, k) for f, k in zip(floats, kept, strict=True))


def test_forward_cropped_checks_its_inputs() -> None:
    aug = Augmenter.from_views(ViewConfig(size=8), ViewConfig(size=8))
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="list of 2"):
        aug.forward_cropped([x], torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match=r"view_crops must have shape \(2, 2, 4\)"):
        aug.forward_cropped([x, x], torch.zeros(2, 4))
    with pytest.raises(ValueError, match="view 1 must have shape"):
        aug.forward_cropped([x, torch.zeros(2, 3, 9, 9)], torch.zeros(2, 2, 4))


def test_reduced_decode(photos: dict[str, Path]) -> None:
    """JPEG DCT-scaled decoding: chosen only while every box keeps >= its output size; the record (snapped to the
    coarse grid, fractions of the whole image) reproduces the view from the reduced decode exactly, and the view is
    close to the full-decode view of the same box (the pixel difference is what the option trades)."""
    assert draft_factor([(0, 0, 300, 400), (0, 0, 520, 260)], [64, 64]) == 4
    assert draft_factor([(0, 0, 300, 400), (0, 0, 100, 260)], [64, 64]) == 1
    assert draft_factor([(0, 0, 900, 1200)], [100]) == 8

    def boxes(h: int, w: int) -> list[tuple[int, int, int, int]]:
        return [(37, 101, 601, 803), (0, 0, h, w)]

    reduced, rec = resized_crops(photos["big"], boxes, [96, 112], reduced_decode=True)
    _, full_rec = resized_crops(photos["big"], boxes, [96, 112])
    full = _decoded(photos["big"])
    assert torch.allclose(full_rec[0], torch.tensor([37 / 900, 101 / 1200, 601 / 900, 803 / 1200]))
    with Image.open(photos["big"]) as im:
        im.draft("RGB", (1200 // 4, 900 // 4))  # what draft_factor picks here: 601 // 4 >= 112 > 601 // 8
        small = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()
    assert small.shape[1:] == (225, 300)
    for v, S in enumerate((96, 112)):
        t, l, h, w = _pixels(rec[v], 225, 300)
        assert torch.equal(reduced[v], F2.resized_crop(small, t, l, h, w, [S, S], antialias=True))
        assert torch.allclose(rec[v], full_rec[v], atol=2 / 225)  # snapped by at most half a coarse pixel (+ rounding)
        # against a full decode of the same (snapped) region: only the decoding differs. libjpeg's scaled IDCT and
        # the antialiased resize are both low-pass reductions of the same image; their difference is of the order
        # of the q90 quantisation error itself (about a grey level), far below the image's own contrast.
        box = (4 * t, 4 * l, min(4 * h, 900 - 4 * t), min(4 * w, 1200 - 4 * l))
        same = F2.resized_crop(full, *box, [S, S], antialias=True)  # explicit: torchvision < 0.17 defaults to False
        diff = (reduced[v].float() - same.float()).abs()
        assert float(diff.mean()) < 2.0 and float(diff.max()) <= 16
        assert float((reduced[v].float() - reduced[v].float().mean()).abs().mean()) > 10 * float(diff.mean())


def test_worker_crops_follow_the_seed(photos: dict[str, Path]) -> None:
    """Boxes drawn in a DataLoader worker come from the worker's torch generator, seeded from the main process's:
    the same seed gives the same crops, another seed other crops; the two views differ."""
    ds = FileListDataset([(str(photos["land"]), 0)] * 8, 16).use_full_image_crops([ViewConfig(size=16)] * 2)

    def crops(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
        return torch.cat([b["view_crops"] for b in loader])

    a = crops(0)
    assert torch.equal(a, crops(0)) and not torch.equal(a, crops(1))
    assert not torch.equal(a[:, 0], a[:, 1])


def test_use_crop_mode_and_corrupt_files(tmp_path: Path, photos: dict[str, Path]) -> None:
    views = [ViewConfig(size=16), ViewConfig(size=16)]
    ds = FileListDataset([(str(photos["land"]), 0)], 16)
    assert use_crop_mode(ds, "centre_square", views) is ds and set(ds[0]) == {"image", "label", "source_crop"}
    plain = torch.utils.data.TensorDataset(torch.zeros(2))
    assert use_crop_mode(plain, "full_image", views) is plain  # fixed-size in-memory sets keep the device crop
    with pytest.raises(ValueError, match="unknown crop mode 'square'"):
        use_crop_mode(ds, "square", views)
    assert use_crop_mode(ds, "full_image", views) is ds and set(ds[0]) == {"views", "view_crops", "label"}
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(photos["land"].read_bytes()[:2000])
    broken = FileListDataset([(str(bad), 0)], 16).use_full_image_crops(views)
    with pytest.raises(ValueError, match=r"bad\.jpg"):
        broken[0]


# ---- training ---------------------------------------------------------------------------------------------------
def test_full_image_config_trains(tmp_path: Path) -> None:
    """A folder of variable-size images with ``data.crop=full_image`` (AugSelf crop target + E-SSL's extra view)
    trains a few steps through the CLI with a DataLoader worker."""
    from augself.cli import main

    root = tmp_path / "data"
    sizes = [(40, 30), (30, 40), (64, 24), (25, 25), (50, 37), (37, 50)]
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            _photo(w, h, seed=10 * c + i).save(root / f"c{c}" / f"{i}.jpg", quality=90)
    out = tmp_path / "run"
    args = [
        "pretrain",
        "--out",
        str(out),
        f"data.name={root}",
        "data.split=all",
        "data.crop=full_image",
        "data.num_workers=1",
        "augment.size=16",
        "model.backbone=small_cnn",
        "augself.crop=1.0",
        "augself.color=1.0",
        "essl.weight=0.4",
        "trainer.batch_size=4",
        "trainer.max_steps=3",
        "trainer.epochs=1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1",
        "monitor.online_probe=false",
    ]
    assert main(args) == 0
    assert (out / "backbone.pt").is_file()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    for key in ("train/augself/crop", "train/essl/rot_loss", "train/loss_step"):
        values = [float(r[key]) for r in rows if r.get(key)]
        assert len(values) == 3 and all(math.isfinite(v) for v in values), key


# ---- crops keyed by (seed, epoch, index): independent of the workers, reproduced after resume ------------------
def test_keyed_crops_ignore_the_worker_count(photos: dict[str, Path]) -> None:
    """``(epoch, index)`` keys (what the resumable sampler yields for full_image sets) give the same views and
    crop records with 0 and 2 workers, whatever torch's global seed; another epoch or run seed gives other boxes."""
    from augself.data.folder import crop_seed
    from augself.train.sampler import ResumableSampler

    views = [ViewConfig(size=16), ViewConfig(size=12, crop_scale=(0.08, 1.0))]
    samples = [(str(photos["land"]), 0), (str(photos["port"]), 1)] * 4
    ds = FileListDataset(samples, 16).use_full_image_crops(views, seed=7)
    assert ds.keyed_by_epoch and not FileListDataset(samples, 16).keyed_by_epoch

    def epoch(e: int, workers: int, torch_seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        sampler = ResumableSampler(len(ds), seed=7, keyed=True)
        sampler.set_epoch(e)
        torch.manual_seed(torch_seed)  # the workers' generators: must not matter
        loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers)
        batches = list(loader)
        crops = torch.cat([b["view_crops"] for b in batches])
        return crops, [torch.cat([b["views"][v] for b in batches]) for v in range(len(views))]

    c0, v0 = epoch(1, 0, torch_seed=0)
    c2, v2 = epoch(1, 2, torch_seed=1)
    assert torch.equal(c0, c2) and all(torch.equal(a, b) for a, b in zip(v0, v2, strict=True))
    order = ResumableSampler(len(ds), seed=7).order(1)  # the same permutation, keyed or not
    assert torch.equal(c0[3], ds[(1, order[3])]["view_crops"])
    other, _ = epoch(2, 0, torch_seed=0)
    order2 = ResumableSampler(len(ds), seed=7).order(2)
    by_index = {i: c0[k] for k, i in enumerate(order)}
    assert all(not torch.equal(by_index[i], other[k]) for k, i in enumerate(order2))  # each sample re-drawn
    assert not torch.equal(c0[:, 0], c0[:, 1])  # two views, two boxes
    reseeded = FileListDataset(samples, 16).use_full_image_crops(views, seed=8)
    assert not torch.equal(reseeded[(1, 0)]["view_crops"], ds[(1, 0)]["view_crops"])
    assert set(ds[0]) == {"views", "view_crops", "label"}  # plain ints (DDP) still work: worker RNG
    assert len({crop_seed(7, e, i) for e in range(3) for i in range(50)}) == 150
    assert all(0 <= crop_seed(s, 9, 9) < 2**63 for s in (0, -1, 2**64 + 3))


def test_full_image_resume_mid_epoch_equals_uninterrupted(tmp_path: Path) -> None:
    """A full_image run stopped by SIGTERM in the middle of its second epoch and resumed writes the same
    metrics.csv (byte for byte) and the same weights as an uninterrupted run: the interrupted epoch's remaining
    crops are redrawn exactly (before (epoch, index) keys they came from the workers' unsaved generators)."""
    import os
    import signal

    import lightning as L

    from augself.config import load_config
    from augself.train.interrupt import TrainingInterrupted
    from augself.train.run import run_pretrain

    root = tmp_path / "data"
    sizes = [(40, 30), (30, 40), (64, 24), (25, 25), (50, 37), (37, 50)]
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            _photo(w, h, seed=10 * c + i).save(root / f"c{c}" / f"{i}.jpg", quality=90)
    over = [
        f"data.name={root}",
        "data.split=all",
        "data.crop=full_image",
        "data.num_workers=1",
        "augment.size=16",
        "model.backbone=small_cnn",
        "augself.crop=1.0",
        "augself.color=1.0",
        "trainer.batch_size=4",  # 12 images: 3 steps per epoch
        "trainer.epochs=2",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1",
        "monitor.online_probe=false",
    ]

    class StopAtStep4(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            if trainer.global_step == 4:  # one batch into epoch 1
                os.kill(os.getpid(), signal.SIGTERM)

    def weights(out: Path) -> dict[str, torch.Tensor]:
        return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU reductions depend on the thread split
    try:
        full = run_pretrain(load_config(None, [*over, f"out={tmp_path / 'full'}"]))
        cut = tmp_path / "cut"
        with pytest.raises(TrainingInterrupted):
            run_pretrain(load_config(None, [*over, f"out={cut}"]), callbacks=[StopAtStep4()])
        step = torch.load(cut / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
        assert step == 4
        run_pretrain(load_config(None, [*over, f"out={cut}"]), resume=True)
    finally:
        torch.set_num_threads(threads)
    a, b = (full / "metrics.csv").read_bytes(), (cut / "metrics.csv").read_bytes()
    assert a == b and a.count(b"\n") > 6
    wa, wb = weights(full), weights(cut)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
