"""Learned per-input rotation (InstaAug, issue 16) vs fixed rotation ranges, supervised, on ``synthetic_orientation``.

The Mario-Iggy design (Miao et al., ICML 2023; ``augself.data.synthetic_orientation``): 2 classes that do
not depend on orientation (star, crescent at any angle) and 4 that are defined by it (heart / arrow, upright
U[-45, 45] deg or upside-down 180 + U[-45, 45] deg). A learned range should stay wide on the first and narrow, about
[-45 - phi, 45 - phi] for an image at offset phi, on the others; a fixed range is the same for every image.

Arms (each a ``method=supervised`` run of the product, ``run_pretrain`` with config overrides):

* ``none``: no augmentation (``angle_max=0`` is the same run: theta = 0 leaves every image unrotated);
* ``fixed45`` / ``fixed90`` / ``fixed180``: ``augment.angle_p=1``, ``augment.angle_max`` 45 / 90 / 180 degrees;
* ``learned``: ``augment.learned.angle`` at the reference's settings (``configs/config_rotation_supervised.yaml``:
  widths ``pi * sigmoid(p - 2)``, entropy weight 0.1 per width, module warm-up 10 epochs) except the module's
  learning rate (``--learned-lr``, see below) and a warm-up scaled to the short run (``--learned-warmup``).

Every other augmentation is off (the reference's Mario-Iggy loader has none: ``loader.py:228-230``); in particular
the horizontal flip, which would turn a right-pointing arrow into a left-pointing ("upside-down") one. Metrics:
test top-1 of the trained classifier on the un-augmented, evenly spaced test images, per arm (mean ± std over
seeds); for the learned arm, the learned range per class (``LearnedAugment.summary`` of the module saved in the
run's ``learned.pt`` on the test images): mean lower / upper width in degrees, and for the orientation-defined
classes how the range follows the image's offset phi (slope of the range centre (hi - lo) / 2 against phi; ideal
-1) and the share of the range that stays inside the class's +-45 degree sector.

Classifier optimisation (a deviation for a few CPU minutes, not the reference's 150 epochs of SGD 0.002 on a
PreActResNet-18 with 1000 images): AdamW lr 2e-3 (the demo's small-CNN setting), 600 images (100 per class), batch
50, 30 epochs (360 steps, against the reference's 1500). The module is a parameter group of the same optimiser, so
its step size is Adam's; the reference's lr 1e-5 (with SGD) moves the ranges little in a short run, hence the
explicit ``--learned-lr`` 3e-4 from an lr check on seed 0 (total width lo + hi per class, degrees; about 43 at init):
1e-5, 10 epochs: 59-71 for every class; 1e-4, 30 epochs: rotation-free 155-178, orientation-defined 147-159;
3e-4, 30 epochs: rotation-free 180-274, orientation-defined 152-164; 1e-3, 10 epochs: every range saturated at 360
and the orientation-defined classes' test accuracy down to 41-74 %.
Writes ``results.json``, ``report.md`` and ``ranges.png`` to ``--out``; finished runs are reused::

    python benchmarks/learned_rotation.py --out runs/learned-rotation
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augself.demo import mean_std, seed_summary

DEFAULT_ARMS = "none,fixed45,fixed90,fixed135,fixed180,learned"


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]


ARMS: dict[str, Arm] = {
    "none": Arm("no augmentation (= angle_max 0)", ()),
    "fixed45": Arm("fixed ±45°", ("augment.angle_p=1.0", "augment.angle_max=45")),
    "fixed90": Arm("fixed ±90°", ("augment.angle_p=1.0", "augment.angle_max=90")),
    "fixed135": Arm("fixed ±135°", ("augment.angle_p=1.0", "augment.angle_max=135")),
    "fixed180": Arm("fixed ±180°", ("augment.angle_p=1.0", "augment.angle_max=180")),
    "learned": Arm("learned (InstaAug)", ("augment.learned.angle={}",)),
}

# One view, nothing but the rotation under test (the reference's loader adds no augmentation).
BASE_OVERRIDES: tuple[str, ...] = (
    "method=supervised",
    "model.backbone=small_cnn",
    "data.name=synthetic_orientation",
    "augment.views=[{}]",
    "augment.crop_scale=[1.0,1.0]",
    "augment.crop_ratio=[1.0,1.0]",
    "augment.flip_p=0.0",
    "augment.color_p=0.0",
    "augment.gray_p=0.0",
    "augment.blur_p=0.0",
    "optim.name=adamw",
    "optim.base_lr=0.002",
    "optim.scale_lr=false",
    "optim.weight_decay=1e-4",
    "optim.warmup_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.checkpoint_every_n_epochs=1000",
    "trainer.log_every_n_steps=5",
    "monitor.online_probe=false",
    "monitor.every_n_epochs=0",
    "data.num_workers=0",
)
EVAL_SEED = 10_000
"""The test set's generator seed (every arm and seed is scored on the same images)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/learned-rotation", help="output folder")
    p.add_argument("--runs", default=None, help="folder of the training runs (default <out>/runs)")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--n", type=int, default=600, help="training images (100 per class; the reference has 250)")
    p.add_argument("--n-test", type=int, default=750, help="test images (evenly spaced angles per class)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--learned-lr", type=float, default=3e-4, help="the module's lr (reference 1e-5 with SGD)")
    p.add_argument("--learned-warmup", type=float, default=2.0, help="module warm-up epochs (reference 10 of 150)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds) to check the set-up")
    p.add_argument("overrides", nargs="*", help="extra config overrides for every arm (key=value)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.n_test, args.epochs, args.seeds = 120, 60, 1, 1
        args.batch_size = min(args.batch_size, 60)
    return args


def command_line(args: argparse.Namespace) -> str:
    if args.quick:
        return f"python benchmarks/learned_rotation.py --quick --arms {args.arms} --out {args.out}"
    parts = [
        "python benchmarks/learned_rotation.py",
        f"--out {args.out}" + (f" --runs {args.runs}" if args.runs else ""),
        f"--arms {args.arms}",
        f"--seeds {args.seeds} --seed {args.seed}",
        f"--n {args.n} --n-test {args.n_test} --size {args.size}",
        f"--epochs {args.epochs} --batch-size {args.batch_size}",
        f"--learned-lr {args.learned_lr:g} --learned-warmup {args.learned_warmup:g}",
        *args.overrides,
    ]
    return " ".join(parts)


def arm_overrides(arm: str, args: argparse.Namespace, seed: int, out: Path) -> list[str]:
    extra = []
    if arm == "learned":
        extra = [f"augment.learned.lr={args.learned_lr}", f"augment.learned.warmup_epochs={args.learned_warmup}"]
    return [
        *BASE_OVERRIDES,
        *ARMS[arm].overrides,
        *extra,
        f"out={out}",
        f"seed={seed}",
        f"data.n={args.n}",
        f"data.size={args.size}",
        f"augment.size={args.size}",
        f"trainer.epochs={args.epochs}",
        f"trainer.batch_size={args.batch_size}",
        *args.overrides,
    ]


@torch.no_grad()
def top1(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std) -> tuple[float, list]:
    """Test top-1 (%) of ``method.classifier(method.backbone(x))`` on un-augmented images, and per-image hits."""
    was = method.training
    method.eval()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    hits = []
    for a in range(0, len(images), 500):
        x = (images[a : a + 500].float() / 255 - m) / s
        hits.append(method.classifier(method.backbone(x)).argmax(1) == labels[a : a + 500])
    method.train(was)
    h = torch.cat(hits)
    return 100.0 * h.float().mean().item(), h.tolist()


def range_stats(lo: np.ndarray, hi: np.ndarray, labels: np.ndarray, offset_deg: np.ndarray, classes, kinds) -> dict:
    """Per class: mean lo / hi (degrees); orientation-defined classes also the slope of the range centre against
    the offset (ideal -1), the mean |error| to the ideal [45 + phi, 45 - phi], the share of the range inside the
    class's +-45 degree sector and inside its +-90 degree half (beyond it the rotated image is nearer the opposite
    class's sector)."""
    out: dict[str, Any] = {}
    for c, name in enumerate(classes):
        k = labels == c
        row: dict[str, Any] = {
            "kind": kinds[c],
            "lo_deg": float(lo[k].mean()),
            "hi_deg": float(hi[k].mean()),
            "width_deg": float((lo[k] + hi[k]).mean()),
        }
        if kinds[c] == "orientation_defined":
            phi = offset_deg[k]
            centre = (hi[k] - lo[k]) / 2
            row["centre_slope"] = float(np.polyfit(phi, centre, 1)[0]) if np.ptp(phi) > 0 else float("nan")
            ideal_lo, ideal_hi = 45 + phi, 45 - phi
            row["mae_to_ideal_deg"] = float((np.abs(lo[k] - ideal_lo) + np.abs(hi[k] - ideal_hi)).mean() / 2)
            # the range in the class's frame is [phi - lo, phi + hi]; the share of it inside [-45, 45]
            a, b = phi - lo[k], phi + hi[k]
            for key, edge in (("in_sector_share", 45), ("in_half_share", 90)):
                inside = np.clip(np.minimum(b, edge) - np.maximum(a, -edge), 0, None) / np.maximum(b - a, 1e-9)
                row[key] = float(inside.mean())
        out[name] = row
    return out


def one_run(arm: str, args: argparse.Namespace, seed: int, run: Path, test: Any) -> dict[str, Any]:
    """Train one arm (or reuse its saved ``eval.json``) and score it on the test set."""
    import lightning as L

    from augself.config import load_config
    from augself.train.run import run_pretrain

    done = run / "eval.json"
    if done.is_file():
        print(f"[learned_rotation] reusing {run}", flush=True)
        return json.loads(done.read_text())

    class Keep(L.Callback):
        module: Any = None

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.module = pl_module

    keep = Keep()
    cfg = load_config(None, arm_overrides(arm, args, seed, run))
    t0 = time.time()
    run_pretrain(cfg, callbacks=[keep], overwrite=True)
    seconds = time.time() - t0
    view = cfg.augment.build().views[0]
    labels = torch.from_numpy(test.labels)
    acc, hits = top1(keep.module.method, test.images, labels, view.mean, view.std)
    res: dict[str, Any] = {"arm": arm, "seed": seed, "top1": acc, "seconds": round(seconds, 1)}
    res["per_class_top1"] = {
        name: 100.0 * float(np.mean([h for h, y in zip(hits, test.labels, strict=True) if y == c]))
        for c, name in enumerate(test.classes)
    }
    if arm == "learned":
        from augself.augment.learned.io import load_learned

        learned = load_learned(run / "learned.pt")
        s = learned.summary(test.images)
        lo, hi = s["angle_lo_deg"].numpy(), s["angle_hi_deg"].numpy()
        offset = np.degrees(test.factors["offset"])
        res["ranges"] = range_stats(lo, hi, test.labels, offset, test.classes, test.kinds)
        res["per_image"] = {"lo_deg": lo.round(2).tolist(), "hi_deg": hi.round(2).tolist()}
    done.write_text(json.dumps(res))
    return res


def aggregate(runs: list[dict[str, Any]], arms: list[str], classes: list[str], kinds: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"top1": {}, "per_class_top1": {}, "seconds": {}}
    for a in arms:
        rs = [r for r in runs if r["arm"] == a]
        out["top1"][a] = seed_summary([r["top1"] for r in rs])
        out["per_class_top1"][a] = {c: seed_summary([r["per_class_top1"][c] for r in rs]) for c in classes}
        out["seconds"][a] = [r["seconds"] for r in rs]
    learned = [r for r in runs if r["arm"] == "learned"]
    if learned:
        keys = ("lo_deg", "hi_deg", "width_deg", "centre_slope", "mae_to_ideal_deg", "in_sector_share", "in_half_share")
        out["ranges"] = {
            c: {"kind": kinds[i]}
            | {k: seed_summary([r["ranges"][c][k] for r in learned]) for k in keys if k in learned[0]["ranges"][c]}
            for i, c in enumerate(classes)
        }
    return out


def tables(results: dict[str, Any]) -> str:
    arms, agg = results["arms"], results["aggregate"]
    classes = results["classes"]
    lines = ["| arm | test top-1 (%) | " + " | ".join(classes) + " | s / run |", "|---" * (len(classes) + 3) + "|"]
    for a, name in arms.items():
        per = [mean_std(agg["per_class_top1"][a][c], 0) for c in classes]
        secs = statistics.fmean(agg["seconds"][a])
        lines.append(f"| {name} | {mean_std(agg['top1'][a])} | " + " | ".join(per) + f" | {secs:.0f} |")
    if "ranges" in agg:
        lines += [
            "",
            "Learned range per class on the test images (degrees, theta ~ U[-lo, hi]; mean over images, then mean ± "
            "std over seeds). Ideal for an orientation-defined image at offset phi: lo = 45 + phi, hi = 45 - phi "
            "(centre slope -1, in-sector share 1); in-half share: the part of the range inside +-90 degrees of the "
            "class's canonical angle.",
            "",
            "| class | kind | lo | hi | width | centre slope vs phi | mean abs error to ideal | in-sector share "
            "| in-half share |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c, r in agg["ranges"].items():
            keys = ("centre_slope", "mae_to_ideal_deg", "in_sector_share", "in_half_share")
            extra = [mean_std(r[k], 2) if k in r else "–" for k in keys]
            lines.append(
                f"| {c} | {r['kind'].replace('_', '-')} | {mean_std(r['lo_deg'])} | {mean_std(r['hi_deg'])} | "
                f"{mean_std(r['width_deg'])} | " + " | ".join(extra) + " |"
            )
    return "\n".join(lines)


def chart(results: dict[str, Any], runs: list[dict[str, Any]], test: Any) -> Any:
    """Left: mean learned interval [-lo, hi] per class. Right: per-image intervals of the orientation-defined
    classes against the offset phi (first learned seed), with the ideal [-45 - phi, 45 - phi]."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    ax, bx = fig.subplots(1, 2)
    rng = results["aggregate"]["ranges"]
    classes = results["classes"]
    for i, c in enumerate(classes):
        lo, hi = rng[c]["lo_deg"]["mean"], rng[c]["hi_deg"]["mean"]
        colour = "tab:blue" if rng[c]["kind"] == "rotation_free" else "tab:orange"
        ax.barh(i, lo + hi, left=-lo, color=colour, alpha=0.7)
    ax.axvline(-45, ls="--", c="grey", lw=0.8)
    ax.axvline(45, ls="--", c="grey", lw=0.8)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlim(-180, 180)
    ax.set_xlabel("learned rotation range [-lo, hi] (deg), mean")
    ax.set_title("blue: rotation-free, orange: orientation-defined", fontsize=9)
    first = next(r for r in runs if r["arm"] == "learned")
    lo, hi = np.asarray(first["per_image"]["lo_deg"]), np.asarray(first["per_image"]["hi_deg"])
    phi = np.degrees(test.factors["offset"])
    k = test.factors["kind"] == 1
    bx.scatter(phi[k], hi[k], s=4, color="tab:red", alpha=0.5, label="hi")
    bx.scatter(phi[k], -lo[k], s=4, color="tab:blue", alpha=0.5, label="-lo")
    xs = np.linspace(-45, 45, 2)
    bx.plot(xs, 45 - xs, "k--", lw=1, label="ideal (sector): 45 - phi, -45 - phi")
    bx.plot(xs, -45 - xs, "k--", lw=1)
    bx.plot(xs, 90 - xs, "k:", lw=1, label="half: 90 - phi, -90 - phi")
    bx.plot(xs, -90 - xs, "k:", lw=1)
    bx.set_xlabel("offset phi of the test image (deg)")
    bx.set_ylabel("learned [-lo, hi] (deg)")
    bx.set_title(f"orientation-defined classes, seed {first['seed']}", fontsize=9)
    bx.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from augself.data.synthetic_orientation import SyntheticOrientation
    from augself.eval.report import strict_json

    args = parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        sys.exit(f"unknown arm(s) {bad}; valid: {', '.join(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs) if args.runs else out / "runs"
    test = SyntheticOrientation(args.n_test, args.size, seed=EVAL_SEED, split="test")
    t0 = time.time()
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        for arm in arms:
            print(f"[learned_rotation] seed {seed}: {ARMS[arm].name}", flush=True)
            r = one_run(arm, args, seed, runs_dir / f"{arm}-seed{seed}", test)
            print(f"[learned_rotation] seed {seed}: {arm}: top-1 {r['top1']:.1f} % ({r['seconds']:.0f} s)", flush=True)
            runs.append(r)
    results: dict[str, Any] = {
        "command": command_line(args),
        "settings": {k: v for k, v in vars(args).items()},
        "base_overrides": list(BASE_OVERRIDES),
        "arm_overrides": {a: list(ARMS[a].overrides) for a in arms},
        "arms": {a: ARMS[a].name for a in arms},
        "classes": list(test.classes),
        "kinds": list(test.kinds),
        "run_minutes": round(sum(r["seconds"] for r in runs) / 60, 2),
        "aggregate": aggregate(runs, arms, list(test.classes), list(test.kinds)),
        "runs": [{k: v for k, v in r.items() if k != "per_image"} for r in runs],
    }
    (out / "results.json").write_text(strict_json(results, indent=2))  # NaN -> null
    table = tables(results)
    png = ""
    if "ranges" in results["aggregate"]:
        chart(results, runs, test).savefig(out / "ranges.png", dpi=120)
        png = "\n\n![learned ranges](ranges.png)\n"
    n = args.seeds
    (out / "report.md").write_text(
        "# Learned rotation (InstaAug) vs fixed rotation ranges on synthetic_orientation\n\n"
        f"Supervised small CNN, {args.size} px, {args.n} training images, {args.epochs} epochs, {n} seed(s); test "
        f"top-1 on {args.n_test} un-augmented test images with evenly spaced angles per class (mean ± std over "
        f"seeds). The runs took {results['run_minutes']} min (sum of their training times on a shared 2-core "
        f"machine). Command: `{results['command']}`.\n\n"
        f"{table}{png}\n\nOverrides of every arm: `{' '.join(BASE_OVERRIDES)}`; arms: "
        + "; ".join(f"{a}: `{' '.join(ARMS[a].overrides) or '-'}`" for a in arms)
        + f"; learned also `augment.learned.lr={args.learned_lr:g} augment.learned.warmup_epochs="
        f"{args.learned_warmup:g}`.\n"
    )
    print(table)
    print(
        f"[learned_rotation] {len(runs)} run(s) ({results['run_minutes']} min of runs, {time.time() - t0:.0f} s in "
        f"this call); wrote {out}/results.json, report.md"
    )
    print(f"[learned_rotation] command: {results['command']}")
    return results


if __name__ == "__main__":
    main()
