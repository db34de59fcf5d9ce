"""Bad-input catalogue: each case ends in one clear message through the CLI (exit 2, no traceback) or a counted
skip, and nothing already written is lost."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augself.cli import main
from augself.data import ImageFolderDataset
from helpers import TINY_RUN

TINY = [*TINY_RUN, "trainer.epochs=1", "trainer.log_every_n_steps=1", "augself.crop=1.0"]


def _fails(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 2) -> str:
    rc = main(["pretrain", *argv])
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and "augself pretrain: error: " in err
    return err


# ------------------------------------------------------------------------------------------ names, values, options
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("method=simclrr", ["unknown method 'simclrr'", "valid names:", "byol", "Did you mean 'simclr'"]),
        ("model.backbone=resnet19", ["unknown backbone", "resnet50", "Did you mean 'resnet18'"]),
        ("augself.colr=1.0", ["unknown AugSelf augmentation 'colr'", "crop", "Did you mean 'color'"]),
        ("optim.name=lasr", ["unknown optimizer", "Did you mean 'lars'"]),
        ("augself.crop=-1", ["augself.crop must be a finite number >= 0, got -1"]),
        ("augself.crop=nan", ["augself.crop must be a finite number >= 0"]),
        ("augself.crop=inf", ["augself.crop must be a finite number >= 0"]),
        ("augself.crop=abc", ["'abc'", "augself.crop"]),
        ("essl.weight=-0.4", ["essl.weight must be"]),
        ("augment.crop_scale=[]", ["length 0", "augment.crop_scale=[]"]),
        ("augment.crop_scale=[0.8,0.2]", ["crop_scale must satisfy 0 < low <= high"]),
        ("augment.crop_scale=[0.2,1.5]", ["crop_scale upper bound"]),
        ("augment.crop_scale=[a,b]", ["augment.crop_scale must be a list of 2 numbers", "augment.crop_scale=[a,b]"]),
        ("augment.blur_sigma=[0,2]", ["blur_sigma must satisfy"]),
        ("augment.flip_p=1.5", ["flip_p must be a probability"]),
        ("trainer.batch_size=1", ["trainer.batch_size must be >= 2"]),
        ("trainer.checkpoint_every_n_steps=-1", ["checkpoint_every_n_steps must be >= 0"]),
        ("trainer.batch_size", ["key=value"]),
        # issue 13 items 9 / 11: each used to end in a traceback (exit 1), a late error or was accepted
        ("data.nmae=x", ["unknown config key 'data.nmae'", "Did you mean 'data.name'"]),
        ("method_args.foo=[1", ["override 'method_args.foo=[1'", "invalid YAML"]),
        ("method_args.tempreature=0.1", ["unknown method_args.tempreature for method 'simclr'", "'temperature'?"]),
        ("method_args.temperature=abc", ["method_args.temperature must be a number, got 'abc'"]),
        ("method_args.temperature=0", ["method_args.temperature must be > 0"]),
        ("method_args=[1]", ["method_args must be a mapping"]),
        ("augment.views=[{}]", ["method 'simclr' needs at least 2 views, augment.views lists 1"]),
        ("augment.views=[]", ["augment.views must list at least one view"]),
        ("augment.views=[1,2]", ["augment.views[0] must be a mapping of view settings"]),
        ("augment.views=[{sise: 8},{}]", ["unknown key 'augment.views[0].sise'", "Did you mean 'size'"]),
        ("augment.views=[{},{crop_scale: []}]", ["augment.views[1].crop_scale must be a list of 2 numbers"]),
        ("augment.views=[{size: abc},{}]", ["augment.views[0].size", "'abc'"]),
        ("augment.views=[{color_brightness: .nan},{}]", ["augment.views[0].color_brightness must be a finite number"]),
        ("augment.color_brightness=inf", ["augment.color_brightness must be a finite number, got inf"]),
        ("trainer.devices=abc", ["trainer.devices must be auto, a device count >= 1", "got 'abc'"]),
        ("trainer.devices=0", ["trainer.devices must be auto", "got 0"]),
        ("trainer.devices=-2", ["trainer.devices must be auto", "got -2"]),
        ("trainer.devices=[0,0]", ["trainer.devices must be auto"]),
        ("trainer.devices=[0,1]", ["trainer.devices=[0, 1]: on the CPU give a number of processes"]),
        ("trainer.devices=-1", ["trainer.devices=-1: on the CPU give a number of processes (e.g. 2), not -1"]),
        ("trainer.accelerator=gpux", ["unknown trainer.accelerator 'gpux'", "Did you mean 'gpu'"]),
        ("trainer.strategy=dpp", ["unknown trainer.strategy 'dpp'", "Did you mean 'ddp'"]),
        ("trainer.precision=17", ["unknown trainer.precision '17'", "bf16-mixed"]),
        ("trainer.num_nodes=0", ["trainer.num_nodes must be >= 1"]),
        ("trainer.loggers=[tb]", ["unknown trainer.loggers entry 'tb'", "csv, tensorboard, wandb"]),
        ("trainer.loggers=csv", ["trainer.loggers must be a list"]),
        ("optim.base_lr=inf", ["optim.base_lr must be a finite number, got inf"]),
        ("optim.base_lr=nan", ["optim.base_lr must be a finite number, got nan"]),
        ("optim.base_lr=-0.1", ["optim.base_lr must be > 0"]),
        ("optim.weight_decay=-1", ["optim.weight_decay must be >= 0"]),
        ("optim.momentum=1.5", ["optim.momentum must be in [0, 1]"]),
        ("optim.betas=[0.9]", ["optim.betas must be a list of 2 numbers, got length 1"]),
        ("optim.warmup_epochs=-1", ["optim.warmup_epochs must be >= 0"]),
        ("seed=-1", ["seed must be an integer in [0, 4294967295] (numpy's seed range), got -1"]),
        ("seed=4294967296", ["seed must be an integer in [0, 4294967295]"]),
        ("data.num_workers=-1", ["data.num_workers must be >= 0"]),
        ("monitor.temperature=0", ["monitor.temperature must be > 0"]),
    ],
)
def test_bad_config_values(
    override: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(capsys, "--out", str(tmp_path / "run"), *TINY, override)
    assert len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err
    assert not (tmp_path / "run").exists()  # rejected before anything was written


def _fails_cleanly(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> str:
    """Exit 2, one line on stderr, and nothing created under ``tmp_path``."""
    before = sorted(tmp_path.iterdir())
    err = _fails(capsys, *argv)
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(tmp_path.iterdir()) == before  # no run folder
    return err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer:\n  epochs: [1\n", ["c.yaml, line 3, column 1: invalid YAML"]),
        ("method: simclr\nmethod: byol\n", ["c.yaml, line 2, column 1: duplicate key 'method'"]),
        ("trainer:\n  epochs: 1\n  epochs: 2\n", ["c.yaml, line 3, column 3: duplicate key 'epochs'"]),
        ("augself: {crop: 1, crop: 0.5}\n", ["duplicate key 'crop'"]),
        ("- method\n", ["c.yaml must hold a mapping of config keys"]),
        ("1: 2\n", ["a key must be a name"]),
        ("trainer:\n  batchsize: 3\n", ["unknown config key 'trainer.batchsize' (in ", "'trainer.batch_size'"]),
        ("augment:\n  crop_scale: [0.2]\n", ["augment.crop_scale must be a list of 2 numbers, got length 1"]),
        ("seed: !!python/object/apply:os.getpid []\n", ["c.yaml, line 1, column 7", "python/object/apply"]),
        ("a: &x [*x]\n", ["expands to more than"]),
    ],
)
def test_bad_config_files(text: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text(text)
    err = _fails_cleanly(capsys, tmp_path, "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), *TINY)
    for line in expected:
        assert line in err


def test_config_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_bytes(b"method: simclr\ndata:\n  name: caf\xe9\n")  # Latin-1
    err = _fails_cleanly(capsys, tmp_path, "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), *TINY)
    assert "c.yaml is not UTF-8 text: byte 0xe9 on line 3 (offset 32)" in err


@pytest.mark.parametrize("setting", ["out", "data.root"])
def test_non_utf8_path_names_the_setting(setting: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sys.argv`` holds undecodable bytes of a file name as lone surrogates (PEP 383): ``b"caf\xe9"``."""
    name = os.fsdecode(bytes(tmp_path / "caf") + b"\xe9")
    err = _fails_cleanly(capsys, tmp_path, *TINY, f"{setting}={name}")
    assert f"{setting}: the value " in err and "not valid UTF-8" in err


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps"])
def test_accelerator_this_machine_lacks(
    accelerator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    argv = ["--out", str(tmp_path / "r"), *TINY, f"trainer.accelerator={accelerator}", "trainer.devices=auto"]
    err = _fails_cleanly(capsys, tmp_path, *argv)
    assert f"trainer.accelerator={accelerator}: this machine has no {accelerator.upper()} device" in err
    assert "use trainer.accelerator=cpu" in err


def test_more_gpus_than_the_machine_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    base = ["--out", str(tmp_path / "r"), *TINY, "trainer.accelerator=gpu"]
    err = _fails_cleanly(capsys, tmp_path, *base, "trainer.devices=2")
    assert "trainer.devices=2, but this machine has 1 CUDA device(s)" in err
    err = _fails_cleanly(capsys, tmp_path, *base, "trainer.devices=[1]")
    assert "device index 1 does not exist; this machine has 1 CUDA device(s) (indices 0..0)" in err


def test_strategy_lightning_cannot_set_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid name in a combination Lightning refuses (FSDP needs a GPU): its own check, before the run folder."""
    pytest.importorskip("lightning.pytorch.trainer.connectors.accelerator_connector")
    err = _fails_cleanly(capsys, tmp_path, "--out", str(tmp_path / "r"), *TINY, "trainer.strategy=fsdp")
    assert "rejected by Lightning" in err and "strategy=fsdp" in err and "GPU" in err


@pytest.mark.parametrize(
    ("setting", "modules", "extra"),
    [
        ("model.backbone=timm:resnet18", ["timm"], "timm"),
        ("trainer.loggers=[csv,tensorboard]", ["tensorboard", "tensorboardX"], "tensorboard"),
        ("trainer.loggers=[wandb]", ["wandb"], "wandb"),
    ],
)
def test_missing_optional_package(
    setting: str,
    modules: list[str],
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 14 item 6; absence is simulated (``sys.modules[name] = None``) so the test holds with the package too."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    err = _fails_cleanly(capsys, tmp_path, "--out", str(tmp_path / "r"), *TINY, setting)
    assert f"needs the optional package {modules[0]}, which is not installed" in err
    assert f"pip install -e '.[{extra}]' in a clone of augself" in err


def test_missing_timm_from_python_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from augself.config import ConfigError
    from augself.models.backbones import build_backbone

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[timm\]'") as info:
        build_backbone("timm:resnet18")
    assert isinstance(info.value, ConfigError)  # and a user error for the CLI (exit 2)


def test_every_optional_extra_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    from augself.optional import EXTRAS

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    declared = pyproject["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert extra in declared and declared[extra][0].startswith(modules[0]), extra


def test_moco_queue_not_divisible_by_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, "--out", str(tmp_path), *TINY, "method=moco", "method_args.queue_size=100")
    assert "queue_size=100 must be divisible by trainer.batch_size=32" in err


def test_unknown_dataset_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, "--out", str(tmp_path / "run"), *TINY, "data.name=cifar1O")
    assert "unknown dataset 'cifar1O'" in err and "synthetic" in err and "Did you mean 'cifar10'" in err


def test_batch_larger_than_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, "--out", str(tmp_path / "run"), *TINY, "data.n=20")
    assert "trainer.batch_size=32 is larger than the dataset (20 images)" in err


# ------------------------------------------------------------------------------------------ dataset folders
def _png(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 10), color: object = (200, 30, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)  # type: ignore[arg-type]


def test_dataset_folder_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "run")
    err = _fails(capsys, "--out", out, *TINY, f"data.name={tmp_path / 'nope'}")
    assert "does not exist" in err and "nope" in err and "Expected layout" in err

    (tmp_path / "empty").mkdir()
    err = _fails(capsys, "--out", out, *TINY, f"data.name={tmp_path / 'empty'}")
    assert "empty" in err

    _png(tmp_path / "classes" / "cat" / "0.png")
    (tmp_path / "classes" / "dog").mkdir()
    (tmp_path / "classes" / "dog" / "readme.txt").write_text("no images here")
    err = _fails(capsys, "--out", out, *TINY, f"data.name={tmp_path / 'classes'}")
    assert "dog" in err

    (tmp_path / "file.png").write_bytes(b"x")
    err = _fails(capsys, "--out", out, *TINY, f"data.name={tmp_path / 'file.png'}")
    assert "is a file, not a folder" in err


def test_image_modes_and_tiny_images_are_converted(tmp_path: Path) -> None:
    """Grayscale, RGBA, palette, 16-bit, CMYK and 1-bit files, all smaller than the 16-px source size."""
    root = tmp_path / "modes"
    _png(root / "a" / "gray.png", "L", (5, 3), 90)
    _png(root / "a" / "rgba.png", "RGBA", (3, 4), (10, 20, 30, 0))
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 50, 25] + [0] * 762)
    pal.save(root / "a" / "pal.png")
    Image.fromarray(np.full((4, 6), 32768, dtype=np.uint16)).save(root / "a" / "g16.png")
    _png(root / "b" / "cmyk.tif", "CMYK", (6, 2), (0, 255, 255, 0))
    _png(root / "b" / "one.png", "1", (2, 2), 1)
    ds = ImageFolderDataset(root, None, 16)
    expected = {
        "gray.png": (90, 90, 90),
        "rgba.png": (10, 20, 30),  # alpha dropped, as torchvision's loader
        "pal.png": (200, 50, 25),
        "g16.png": (128, 128, 128),  # 16-bit scaled by 255/65535, not clipped to white
        "cmyk.tif": (255, 0, 0),
        "one.png": (255, 255, 255),
    }
    assert len(ds) == len(expected)
    for i, (path, _) in enumerate(ds.samples):
        image = ds[i]["image"]
        assert image.shape == (3, 16, 16) and image.dtype == torch.uint8  # upscaled to the source size
        want = torch.tensor(expected[Path(path).name], dtype=torch.uint8).view(3, 1, 1)
        assert torch.equal(image, want.expand(3, 16, 16)), path


def _messy_folder(root: Path) -> Path:
    """<root>/train/{a,b}/: 16 small images of mixed modes and sizes plus one truncated JPEG."""
    for i in range(8):
        _png(root / "train" / "a" / f"{i}.png", "L" if i % 2 else "RGBA", (7 + i, 5), 40 * (i % 2) + 10)
        _png(root / "train" / "b" / f"{i}.png", "P" if i % 2 else "RGB", (9, 6 + i), 3)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(root / "train" / "b" / "broken.jpg", quality=90)
    data = (root / "train" / "b" / "broken.jpg").read_bytes()
    (root / "train" / "b" / "broken.jpg").write_bytes(data[: len(data) // 2])
    return root


def test_corrupt_image_named_then_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _messy_folder(tmp_path / "messy")
    run = [*TINY, f"data.name={data}", "trainer.batch_size=4", "monitor.online_probe=false"]
    # decoded into the in-memory cache up front ...
    err = _fails(capsys, "--out", str(tmp_path / "r1"), *run)
    assert "broken.jpg" in err and "--skip-corrupt" in err
    # ... or inside a DataLoader worker during training: still one line naming the file
    err = _fails(capsys, "--out", str(tmp_path / "r2"), *run, "data.cache_mb=0", "data.num_workers=1")
    errors = [line for line in err.splitlines() if "error" in line]
    assert "Original Traceback" not in err and len(errors) == 1 and "broken.jpg" in errors[0]

    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        assert main(["pretrain", "--out", str(tmp_path / "r3"), "--skip-corrupt", *run]) == 0
    assert (tmp_path / "r3" / "backbone.pt").is_file()


# ------------------------------------------------------------------------------------------ resume, output folder
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad_input") / "run"
    assert main(["pretrain", "--out", str(out), *TINY]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.backbone=resnet18", "model.backbone: 'small_cnn' in the checkpoint, 'resnet18' now"),
        ("augself.color=1.0", "augself: {'crop': 1.0} in the checkpoint, {'crop': 1.0, 'color': 1.0} now"),
        ("method=byol", "method: 'simclr' in the checkpoint, 'byol' now"),
        ("seed=1", "seed: 0 in the checkpoint, 1 now"),
    ],
)
def test_resume_with_another_config_is_refused(
    finished_run: Path, override: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished_run)
    err = _fails(capsys, "--out", str(finished_run), "--resume", *TINY, override)
    assert "cannot resume from" in err and expected in err
    assert _snapshot(finished_run) == before


def test_resume_without_or_with_a_broken_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, "--out", str(tmp_path), "--resume", *TINY)
    assert "no checkpoint at" in err
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"\x80\x02garbage")
    err = _fails(capsys, "--out", str(tmp_path), "--resume", *TINY)
    assert "cannot read checkpoint" in err
    torch.save({"something": 1}, tmp_path / "checkpoints" / "last.ckpt")
    err = _fails(capsys, "--out", str(tmp_path), "--resume", *TINY)
    assert "not a Lightning checkpoint" in err


def test_existing_run_is_not_overwritten(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(finished_run)
    err = _fails(capsys, "--out", str(finished_run), *TINY)
    assert "already holds a run" in err and "--resume" in err
    assert _snapshot(finished_run) == before


def _refuse_writes(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    real_open = os.open

    def fake_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_unwritable_output_folder(
    finished_run: Path, tmp_path: Path, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished_run)
    _refuse_writes(monkeypatch, code)
    err = _fails(capsys, "--out", str(tmp_path / "new"), *TINY)
    assert "output folder" in err and str(tmp_path / "new") in err
    err = _fails(capsys, "--out", str(finished_run), "--resume", *TINY, "trainer.epochs=2")
    assert ("full device" if code == errno.ENOSPC else "cannot write to output folder") in err
    monkeypatch.undo()
    assert _snapshot(finished_run) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path.chmod(0o500)
    try:
        err = _fails(capsys, "--out", str(tmp_path / "run"), *TINY)
    finally:
        tmp_path.chmod(0o700)
    assert "output folder" in err


def test_too_little_free_space_is_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))  # type: ignore[attr-defined]
    err = _fails(capsys, "--out", str(tmp_path / "run"), *TINY)
    assert "MiB free" in err and "checkpoint needs about" in err


def test_disk_full_during_training_keeps_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:  # the third checkpoint hits a full disk half-way
            real_save({"partial": torch.zeros(10)}, f)  # type: ignore[arg-type]
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "save", save)
    run = [*TINY, "data.n=96", "trainer.epochs=2", "trainer.checkpoint_every_n_steps=1"]
    err = _fails(capsys, "--out", str(out), *run)
    monkeypatch.undo()
    assert "no space left" in err and "training stopped at step 3" in err and "(step 2)" in err
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.ckpt"]
    assert (out / "metrics.csv").read_text().count("\n") >= 3  # the rows of steps 0-2 are kept
    assert main(["pretrain", "--out", str(out), "--resume", *run]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
