"""Shipped pretraining configs: every one validates (method arguments included), and the method configs train.

Each config named in ``TRAINED`` runs two optimiser steps through ``run_pretrain`` with its own dataset reader,
split, method, method arguments, optimiser, AugSelf and E-SSL settings, shrunk only where size is concerned: a tiny
on-disk STL-10 / CIFAR-10 / image folder, 16-px images, the small CNN, batch 8, projector widths 16, fp32 on CPU.
"""

from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from augself.config import PretrainConfig, load_config
from augself.methods import METHODS
from augself.train.optim import LARS
from augself.train.run import run_pretrain

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "transfer")  # transfer/: evaluation suites
RUNNABLE = [p for p in ALL if p.name != "base.yaml"]

NEW = [
    f"{data}/{method}{suffix}.yaml"
    for data in ("stl10", "cifar10")
    for method in ("barlow", "vicreg", "supervised")
    for suffix in ("", "_augself")
]
# One existing config per method family (and per data source): they must keep training too.
FAMILIES = [
    "stl10/simclr.yaml",
    "stl10/moco_augself.yaml",
    "stl10/byol.yaml",
    "stl10/simsiam_augself.yaml",
    "stl10/swav.yaml",
    "cifar10/esimclr.yaml",
    "imagenet100/moco_augself.yaml",
    "cpu/simclr_small_augself.yaml",
]
TRAINED = NEW + FAMILIES
OPTIMIZERS = {"sgd": torch.optim.SGD, "lars": LARS, "adamw": torch.optim.AdamW}


def _rel(p: Path) -> str:
    return str(p.relative_to(CONFIGS))


@functools.cache
def _load(path: Path) -> PretrainConfig:
    """``load_config(path)``, loaded once per session (read only)."""
    return load_config(path)


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_config_validates_with_its_method_arguments(path: Path) -> None:
    cfg = _load(path)
    views = cfg.augment.build().views
    assert len(views) >= METHODS[cfg.method].views_needed and all(v.size >= 1 for v in views)
    # method_args must be keyword arguments of the method class (a typo would only fail when the run starts)
    params = inspect.signature(METHODS[cfg.method]).parameters
    unknown = sorted(set(cfg.method_args) - set(params))
    assert not unknown, f"{_rel(path)}: method_args {unknown} are not arguments of {cfg.method}"


def test_every_run_config_writes_to_its_own_folder() -> None:
    outs: dict[str, str] = {}
    for path in RUNNABLE:
        out = _load(path).out
        assert out not in outs, f"{_rel(path)} and {outs.get(out)} both write to {out}"
        outs[out] = _rel(path)


@pytest.mark.parametrize("name", NEW)
def test_new_config_has_a_cited_header(name: str) -> None:
    text = (CONFIGS / name).read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header and text.startswith("#")
    if "augself" not in name:  # the plain configs carry the hyper-parameters and their sources
        assert len(header) >= 5 and any("lr" in line for line in header)


def test_new_configs_select_their_method_and_labelled_data() -> None:
    for name in NEW:
        cfg = _load(CONFIGS / name)
        assert cfg.method == name.split("/")[1].removesuffix(".yaml").removesuffix("_augself")
        assert cfg.augself == ({"crop": 1.0, "color": 1.0} if "augself" in name else {})
        if cfg.method == "supervised":  # STL-10's unlabeled images have no labels: the labelled train set only
            assert cfg.data.split == "trainval"
        if cfg.method == "barlow":
            assert cfg.method_args["lambd"] == pytest.approx(0.0051)
        if cfg.method == "vicreg":
            assert (cfg.method_args["sim_weight"], cfg.method_args["var_weight"]) == (25.0, 25.0)
            assert cfg.method_args["cov_weight"] == 1.0


# ---- tiny data on disk, in the real formats ---------------------------------------------------------------
def _write_stl10(root: Path) -> Path:
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", 12), ("test", 8), ("unlabeled", 12)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(d / f"{part}_X.bin")
        if part != "unlabeled":
            (np.arange(n) % 10 + 1).astype(np.uint8).tofile(d / f"{part}_y.bin")
    return root


def _write_cifar10(root: Path) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (d / name).write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return root


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory, colour_folder: Any) -> dict[str, str]:
    base = tmp_path_factory.mktemp("paper_config_data")
    return {
        "stl10": str(_write_stl10(base / "stl10")),
        "cifar10": str(_write_cifar10(base / "cifar10")),
        "folder": str(colour_folder(base / "folder", n_train=4, n_test=2)),
    }


def _shrink(path: Path, roots: dict[str, str], out: Path, extra: list[str] = ()) -> PretrainConfig:
    """The config at ``path`` with only its sizes shrunk (see the module docstring)."""
    cfg = _load(path)
    over = [
        f"out={out}",
        "data.size=16",
        "data.num_workers=0",
        "data.cache_mb=0",
        "augment.size=16",
        "model.backbone=small_cnn",
        "trainer.batch_size=8",
        "trainer.max_steps=2",
        "trainer.epochs=100",  # max_steps ends the run
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        "trainer.progress_bar=false",
        "trainer.loggers=[]",
        "monitor.every_n_epochs=0",
    ]
    if cfg.data.name in ("stl10", "cifar10"):
        over.append(f"data.root={roots[cfg.data.name]}")
    elif cfg.data.name == "synthetic":
        over.append("data.n=16")
    else:  # an image folder (ImageNet-100)
        over += [f"data.name={roots['folder']}", "data.split=train"]
    if any("size" in v for v in cfg.augment.views):
        over.append(f"augment.views=[{', '.join('{size: 16}' for _ in cfg.augment.views)}]")
    if cfg.essl.weight > 0:
        over += ["essl.size=8", "essl.hidden_dim=16"]
    params = inspect.signature(METHODS[cfg.method]).parameters
    small = {"queue_size": 16, "num_prototypes": 8, "freeze_prototypes_iters": 1}
    for name in params:
        if name.endswith("_dim"):
            over.append(f"method_args.{name}=16")
        elif name in small:
            over.append(f"method_args.{name}={small[name]}")
    return load_config(path, [*over, *extra])


class Record(L.Callback):
    """Losses of every step; the module, its optimiser and the backbone weights before the first step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.module: Any = None
        self.optimizer: Any = None
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.initial = {k: v.detach().clone() for k, v in pl_module.method.backbone.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.module, self.optimizer = pl_module, trainer.optimizers[0]


@pytest.mark.parametrize("name", TRAINED)
def test_config_trains_two_steps(name: str, data_roots: dict[str, str], tmp_path: Path) -> None:
    full = _load(CONFIGS / name)
    rec = Record()
    out = run_pretrain(_shrink(CONFIGS / name, data_roots, tmp_path / "run"), callbacks=[rec])
    assert len(rec.losses) == 2 and all(np.isfinite(rec.losses)), rec.losses
    module = rec.module
    assert type(module.method) is METHODS[full.method]
    assert isinstance(rec.optimizer, OPTIMIZERS[full.optim.name])
    heads = set(module.augself.heads) if module.augself is not None else set()
    assert heads == {k for k, v in full.augself.items() if v > 0}
    assert (module.essl is not None) == (full.essl.weight > 0)
    now = module.method.backbone.state_dict()
    changed = [k for k, v in rec.initial.items() if v.is_floating_point() and not torch.equal(v, now[k])]
    assert changed, f"{name}: no backbone weight changed in two steps"
    assert (out / "backbone.pt").is_file()


def test_supervised_stl10_on_the_unlabeled_split_is_refused(data_roots: dict[str, str], tmp_path: Path) -> None:
    cfg = _shrink(CONFIGS / "stl10/supervised.yaml", data_roots, tmp_path / "run", ["data.split=train+unlabeled"])
    with pytest.raises(ValueError, match="label"):
        run_pretrain(cfg)


# ---- docs/reproduction.md: the table of the paper settings, asserted against the configs ------------------
REPRODUCTION = CONFIGS.parent / "docs" / "reproduction.md"
PAPER_METHODS = ("simsiam", "moco", "simclr", "byol", "swav")
PAPER_CONFIGS = [
    CONFIGS / d / f"{m}{s}.yaml" for d in ("stl10", "imagenet100") for m in PAPER_METHODS for s in ("", "_augself")
]
COLUMNS = ["setting", "key", "reference value", "reference (file:line)", "our value", "status"]
# Rows every paper config must have (besides one per argument of its method).
REQUIRED = {
    "data.split", "data.crop", "model.backbone", "model.init", "model.zero_init_residual", "model.cifar_stem",
    "augment.size", "augment.crop_scale", "augment.crop_ratio", "augment.flip_p", "augment.color_p",
    "augment.color_brightness", "augment.color_contrast", "augment.color_saturation", "augment.color_hue",
    "augment.color_strength", "augment.color_saturation_mode", "augment.color_order", "augment.gray_p",
    "augment.blur_p", "augment.blur_sigma", "augment.blur_kernel", "augment.sol_p", "augment.rot_p", "augment.mean",
    "augment.std",
    "optim.name", "optim.base_lr", "optim.scale_lr", "optim.momentum", "optim.weight_decay",
    "optim.exclude_norm_bias", "optim.warmup_epochs", "optim.min_lr_ratio", "optim.lr_interval",
    "trainer.epochs", "trainer.batch_size", "trainer.precision", "trainer.sync_batchnorm",
}  # fmt: skip


def _table_rows(marker: str = "reproduction-table") -> list[dict[str, str]]:
    """The rows between the ``<marker>:start`` / ``<marker>:end`` comments of docs/reproduction.md."""
    text = REPRODUCTION.read_text()
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(COLUMNS), line
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


ROWS = _table_rows()


def _setting_configs(setting: str) -> list[Path]:
    """``stl10/all`` | ``stl10/plain`` | ``stl10/augself`` | ``stl10/<method>`` (plain + AugSelf) -> config paths."""
    dataset, which = setting.split("/")
    methods = PAPER_METHODS if which in ("all", "plain", "augself") else (which,)
    assert set(methods) <= set(PAPER_METHODS), setting
    suffixes = {"plain": ("",), "augself": ("_augself",)}.get(which, ("", "_augself"))
    return [CONFIGS / dataset / f"{m}{s}.yaml" for m in methods for s in suffixes]


def _resolve(cfg: PretrainConfig, key: str) -> Any:
    """A table key on a loaded config (see docs/reproduction.md, "The table")."""
    if key.startswith("augment."):
        values = [getattr(v, key.split(".", 1)[1]) for v in cfg.augment.build().views]
        assert all(v == values[0] for v in values), f"{key} differs between views: {values}"
        return values[0]
    if key.startswith("method_args."):
        name = key.split(".", 1)[1]
        default = inspect.signature(METHODS[cfg.method]).parameters[name].default
        return cfg.method_args.get(name, default)
    if key.startswith("method."):
        return getattr(METHODS[cfg.method], key.split(".", 1)[1])
    if key.startswith("augself."):
        return cfg.augself.get(key.split(".", 1)[1])
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _cell(text: str) -> Any:
    import yaml

    return yaml.safe_load(text.replace("`", ""))


def _same(a: Any, b: Any) -> bool:
    """Equal values, tuples as lists, numbers to 1e-6 relative (table cells round 4/3 to 1.3333333)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= 1e-6 * max(abs(a), abs(b))
    return a == b


def test_reproduction_table_covers_every_paper_setting() -> None:
    per_config: dict[Path, set[str]] = {p: set() for p in PAPER_CONFIGS}
    for row in ROWS:
        status = row["status"]
        assert status == "same" or (status.startswith("deviation:") and "option:" in status), row
        assert row["reference (file:line)"], row
        for path in _setting_configs(row["setting"]):
            assert row["key"] not in per_config[path], f"{_rel(path)}: two rows for {row['key']}"
            per_config[path].add(row["key"])
    for path, keys in per_config.items():
        cfg = _load(path)
        args = {f"method_args.{n}" for n in inspect.signature(METHODS[cfg.method]).parameters} - {
            "method_args.backbone",
            "method_args.num_classes",
        }
        missing = (REQUIRED | args) - keys
        assert not missing, f"{_rel(path)}: no row for {sorted(missing)}"
        assert ("augself" in keys) != ("augself" in path.stem), f"{_rel(path)}: AugSelf rows"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['setting']}:{r['key']}")
def test_reproduction_table(row: dict[str, str]) -> None:
    _check_row(row, _setting_configs(row["setting"]), _resolve)


def _check_row(row: dict[str, str], paths: list[Path], resolve: Callable[[PretrainConfig, str], Any]) -> None:
    """Each config of the row resolves its key to *our value*; a ``same`` row's reference value equals it."""
    ours = _cell(row["our value"])
    for path in paths:
        actual = resolve(_load(path), row["key"])
        assert _same(actual, ours), f"{_rel(path)}: {row['key']} is {actual!r}, the table says {ours!r}"
    if row["status"] == "same":
        assert _same(_cell(row["reference value"]), ours), f"'same' but {row['reference value']} != {ours}"


# ---- docs/reproduction.md: the E-SSL table (CIFAR-10 and ImageNet), asserted against the configs ---------------
ESSL_ROWS = _table_rows("essl-table")
ESSL_CONFIGS = [CONFIGS / d / f"{n}.yaml" for d in ("cifar10", "imagenet") for n in ("essl_simclr", "esimclr")]


def _essl_configs(setting: str) -> list[Path]:
    """``cifar10/essl_simclr+esimclr`` -> configs/cifar10/essl_simclr.yaml and configs/cifar10/esimclr.yaml."""
    folder, names = setting.split("/")
    paths = [CONFIGS / folder / f"{n}.yaml" for n in names.split("+")]
    assert all(p in ESSL_CONFIGS for p in paths), setting
    return paths


def _essl_resolve(cfg: PretrainConfig, key: str) -> Any:
    """Like :func:`_resolve`, plus ``augment.views.N.<field>`` (view N) and ``essl.view.<field>`` (rotation view)."""
    if key.startswith("augment.views."):
        _, _, index, name = key.split(".", 3)
        return getattr(cfg.augment.build().views[int(index)], name)
    if key.startswith("essl.view."):
        return cfg.essl.view[key.split(".", 2)[2]]
    if key.startswith("essl."):
        return getattr(cfg.essl, key.split(".", 1)[1])
    return _resolve(cfg, key)


def test_essl_table_covers_both_recipes() -> None:
    """Every E-SSL config has rows for its method, optimiser, schedule, batch, views and (E-SimCLR) rotation view."""
    per_config: dict[Path, set[str]] = {p: set() for p in ESSL_CONFIGS}
    for row in ESSL_ROWS:
        assert row["status"] == "same" or (row["status"].startswith("deviation:") and "option:" in row["status"])
        for path in _essl_configs(row["setting"]):
            assert row["key"] not in per_config[path], f"{_rel(path)}: two rows for {row['key']}"
            per_config[path].add(row["key"])
    needed = {"method", "model.backbone", "optim.name", "optim.base_lr", "optim.weight_decay", "optim.warmup_epochs",
              "trainer.batch_size", "trainer.epochs", "trainer.precision", "method_args.temperature",
              "method_args.proj_dim", "augment.size", "augment.crop_scale"}  # fmt: skip
    for path, keys in per_config.items():
        missing = needed - keys
        assert not missing, f"{_rel(path)}: no row for {sorted(missing)}"
        if path.stem == "esimclr":
            assert {"essl.weight", "essl.size", "essl.bottleneck_dim"} <= keys, _rel(path)


@pytest.mark.parametrize("row", ESSL_ROWS, ids=lambda r: f"{r['setting']}:{r['key']}")
def test_essl_reproduction_table(row: dict[str, str]) -> None:
    _check_row(row, _essl_configs(row["setting"]), _essl_resolve)
