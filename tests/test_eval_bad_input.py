"""Bad input to ``augself eval`` / ``augself transfer`` (issue 13, items 6, 7, 10, 11): each case reproduces the
probe through the CLI and checks what the user sees (one line, exit status 2, nothing written) or what is written
(strict JSON, unique names, counted skips)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from augself.cli import main
from augself.models import build_backbone, save_backbone


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_load(path: Path) -> Any:
    """Parse like a strict (RFC 8259) JSON parser: a bare NaN / Infinity / -Infinity is an error."""
    return json.loads(path.read_text(), parse_constant=_no_constants)


def make_run(run: Path, *, poison: str | None = None, seed: int = 0) -> Path:
    """A run directory with a small_cnn (16-d features) ``backbone.pt`` and its ``config.yaml`` (view size 16).

    ``poison="nan"``: every weight NaN (a diverged run); ``"const"``: the last block outputs 1 everywhere (finite,
    but every image gives the same features).
    """
    torch.manual_seed(seed)
    net = build_backbone("small_cnn", widths=(8, 16))
    with torch.no_grad():
        if poison == "nan":
            for p in net.parameters():
                p.fill_(float("nan"))
        elif poison == "const":
            convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
            bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            convs[-1].weight.zero_()
            if convs[-1].bias is not None:
                convs[-1].bias.zero_()
            bns[-1].bias.fill_(1.0)
    save_backbone(net, run / "backbone.pt")
    (run / "config.yaml").write_text("augment:\n  size: 16\n  views: [{}, {}]\n")
    return run


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then garbage
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, colour_folder: Callable[..., Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("evalbad")
    return {
        "base": base,
        "data": colour_folder(base / "colours"),
        "run": make_run(base / "run"),
        "nan": make_run(base / "nan", poison="nan"),
    }


def _eval(protocol: str, backbone: Path, data: Path, *extra: str) -> int:
    opts = {
        "linear": ["--wd-grid-size", "2"],
        "knn": ["--k", "5"],
        "fewshot": ["--ways", "3", "--episodes", "20", "--shots", "1"],
    }
    args = ["eval", protocol, "--backbone", str(backbone), "--data", str(data), "--no-progress"]
    return main([*args, *opts.get(protocol, []), *extra])


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("augself: warning:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------------------- 7: non-finite features
@pytest.mark.parametrize("protocol", ["linear", "knn", "fewshot"])
def test_nan_backbone_is_refused_not_scored(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    out = tmp_path / "r.json"
    assert _eval(protocol, env["nan"], env["data"], "--out", str(out)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("augself eval: error:") and str(env["nan"] / "backbone.pt") in line
    n = 36 * 16  # the first split read (train: 3 classes x 12 images) x 16 features, every one NaN
    assert f"{n} of {n} feature values are NaN or inf" in line
    assert not out.exists()


def test_awareness_nan_backbone_is_refused(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "awareness", "--backbone", str(env["nan"]), "--data", str(env["data"]), "--n", "12"]
    assert main([*args, "--no-progress", "--out", str(env["base"] / "aw-nan")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(env["nan"] / "backbone.pt") in line and "NaN or inf" in line
    assert not (env["base"] / "aw-nan" / "awareness.json").exists()


def test_awareness_json_is_strict_with_undefined_values(env: dict[str, Path], tmp_path: Path) -> None:
    """A backbone with constant features: the normalised invariance (pos - neg) / (1 - neg) is 0 / 0. It is
    written as null, never as a bare NaN that strict parsers reject."""
    from augself.eval.awareness import run_awareness

    const = make_run(tmp_path / "const", poison="const")
    out = tmp_path / "aw"
    run_awareness([const], str(env["data"]), out, n=12, progress=False, augmentations=("flip",), probe_steps=2)
    text = (out / "awareness.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rec = strict_load(out / "awareness.json")
    rows = rec["runs"][0]["report"]["invariance"]["flip"]
    assert all(r["normalised"] is None for r in rows)  # undefined -> null
    assert all(r["positive"] == pytest.approx(1.0) for r in rows)


def test_write_json_and_strict_json_never_write_nan(tmp_path: Path) -> None:
    from augself.eval.report import strict_json, write_json

    obj = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": {"d": (float("nan"),)}}
    write_json(obj, tmp_path / "x.json")
    assert strict_load(tmp_path / "x.json") == {"a": None, "b": [None, None, 1.5], "c": {"d": [None]}}
    assert json.loads(strict_json(obj), parse_constant=_no_constants)["a"] is None


# --------------------------------------------------------------------------------------- 11: bad settings, one class
@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan"])
def test_val_fraction_outside_0_1_is_one_line(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out = tmp_path / "r.json"
    assert _eval("linear", env["run"], env["data"], "--val-fraction", value, "--out", str(out)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--val-fraction" in line and "between 0 and 1" in line
    assert not out.exists()


@pytest.mark.parametrize("protocol", ["linear", "knn", "fewshot"])
def test_one_class_set_is_refused(
    env: dict[str, Path],
    tmp_path: Path,
    colour_folder: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    protocol: str,
) -> None:
    one = colour_folder(tmp_path / "one")
    for split in ("train", "test"):
        for c in ("c1", "c2"):
            for f in (one / split / c).iterdir():
                f.unlink()
            (one / split / c).rmdir()
    out = tmp_path / "r.json"
    assert _eval(protocol, env["run"], one, "--out", str(out)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "needs at least 2 classes, found 1" in line
    assert not out.exists()


# --------------------------------------------------------------------------------------- 6: output names
def _stem(data: Path) -> str:
    return f"{hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]}"


@pytest.mark.parametrize("names", [("A/images", "B/images"), ("données", "数据"), ("数据", "图像")])
def test_default_output_names_differ_per_data_path(
    tmp_path: Path, colour_folder: Callable[..., Path], names: tuple[str, str]
) -> None:
    run = make_run(tmp_path / "run")
    written = []
    for i, name in enumerate(names):
        data = colour_folder(tmp_path / "data" / name, n_train=4, n_test=3, seed=i)
        assert _eval("knn", run, data) == 0
        (out,) = [p for p in (run / "eval").glob("knn-*.json") if p not in written]
        assert out.name.endswith(f"-{_stem(data)}.json")
        rec = strict_load(out)
        assert rec["data"]["path"] == str(data.resolve()) and rec["evaluation"]["data"] == str(data.resolve())
        written.append(out)
    assert len(set(written)) == 2


def test_another_evaluations_result_is_never_overwritten(
    env: dict[str, Path], tmp_path: Path, colour_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a = colour_folder(tmp_path / "A" / "images", n_train=4, n_test=3, seed=1)
    b = colour_folder(tmp_path / "B" / "images", n_train=4, n_test=3, seed=2)
    out = tmp_path / "r.json"
    assert _eval("knn", env["run"], a, "--out", str(out)) == 0
    before = out.read_bytes()
    assert _eval("knn", env["run"], b, "--out", str(out)) == 2  # another data folder
    assert _eval("linear", env["run"], a, "--out", str(out)) == 2  # another protocol
    err = capsys.readouterr().err
    assert err.count("already holds the knn result of") == 2 and str(a.resolve()) in err
    assert out.read_bytes() == before
    assert _eval("knn", env["run"], a, "--out", str(out), "--k", "3") == 0  # the same evaluation, re-run
    assert strict_load(out)["settings"]["k"] == 3
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    assert _eval("knn", env["run"], a, "--out", str(other)) == 2
    assert "not an augself result" in capsys.readouterr().err and other.read_text() == '{"mine": 1}'


# --------------------------------------------------------------------------------------- 10: --skip-corrupt
@pytest.fixture()
def corrupt_data(tmp_path: Path, colour_folder: Callable[..., Path]) -> Path:
    data = colour_folder(tmp_path / "cd", n_train=6, n_test=4)
    _corrupt(data / "train" / "c0" / "bad.png")
    _corrupt(data / "test" / "c2" / "bad.jpg")
    return data


@pytest.mark.parametrize("protocol", ["linear", "knn", "fewshot"])
def test_eval_skip_corrupt(
    env: dict[str, Path], tmp_path: Path, corrupt_data: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    out = tmp_path / "r.json"
    assert _eval(protocol, env["run"], corrupt_data, "--out", str(out)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "cannot decode image file" in line and "bad." in line and "--skip-corrupt" in line
    assert not out.exists()
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt image\(s\)") as warned:
        assert _eval(protocol, env["run"], corrupt_data, "--out", str(out), "--skip-corrupt") == 0
    captured = capsys.readouterr()
    rec = strict_load(out)
    assert rec["skipped_corrupt"]["count"] == 2 and rec["data"]["skip_corrupt"] is True
    assert rec["skipped_corrupt"]["per_split"] == {"train": 1, "test": 1}
    assert sorted(Path(p).name for p in rec["skipped_corrupt"]["examples"]) == ["bad.jpg", "bad.png"]
    assert "[skipped 2 corrupt image(s)]" in captured.out
    msgs = [str(w.message) for w in warned if "corrupt" in str(w.message)]
    assert len(msgs) == 2 and msgs[0].startswith("cd/train: skipped 1 corrupt image(s) of 19")  # one per split


def test_awareness_accepts_skip_corrupt(
    env: dict[str, Path], tmp_path: Path, corrupt_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from augself.eval.awareness import load_images

    # the CLI: the corrupt test image stops the report with the advice, which the option then follows
    args = ["eval", "awareness", "--backbone", str(env["run"]), "--data", str(corrupt_data), "--n", "13"]
    assert main([*args, "--no-progress", "--out", str(tmp_path / "aw")]) == 2  # n = 13: every test image
    assert "--skip-corrupt" in _one_error_line(capsys.readouterr().err)
    # the loader: the undecodable image is left out (the next one of the seeded order taken), and counted
    skipped: list[str] = []
    imgs = load_images(str(corrupt_data), size=8, n=13, skip_corrupt=True, skipped=skipped)
    assert imgs.shape == (12, 3, 8, 8) and [Path(p).name for p in skipped] == ["bad.jpg"]
    # without corrupt files the option changes nothing
    clean = [load_images(str(env["data"]), size=8, n=7, seed=3, skip_corrupt=s) for s in (True, False)]
    assert torch.equal(*clean)


def test_awareness_cli_passes_skip_corrupt(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import augself.eval.awareness as aw

    calls: list[dict[str, Any]] = []

    def fake(backbones: list[Any], data: str, out: Path, **kw: Any) -> dict[str, Any]:
        calls.append(kw)
        return {"runs": [{}]}

    monkeypatch.setattr(aw, "run_awareness", fake)
    args = ["eval", "awareness", "--backbone", str(env["run"]), "--data", "synthetic", "--skip-corrupt"]
    assert main([*args, "--out", str(env["base"] / "aw-wiring")]) == 0
    assert calls[0]["skip_corrupt"] is True


def _suite(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(body)
    return p


@pytest.mark.filterwarnings("ignore:.*corrupt image")
def test_transfer_skip_corrupt_flag_and_suite_key(
    env: dict[str, Path], tmp_path: Path, corrupt_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = f"  - {{name: cd, data: {corrupt_data}, protocols: [{{knn: {{k: 5}}}}]"
    plain = _suite(tmp_path, f"datasets:\n{entry}}}\n")
    args = ["transfer", "--runs", str(env["run"]), "--no-progress", "--no-cache"]
    assert main([*args, "--suite", str(plain), "--out", str(tmp_path / "o1")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("augself transfer: error: cannot decode image file") and "--skip-corrupt" in line
    assert main([*args, "--suite", str(plain), "--out", str(tmp_path / "o2"), "--skip-corrupt"]) == 0
    keyed = _suite(tmp_path, f"skip_corrupt: true\ndatasets:\n{entry}}}\n")
    assert main([*args, "--suite", str(keyed), "--out", str(tmp_path / "o3")]) == 0
    per_entry = _suite(tmp_path, f"datasets:\n{entry}, skip_corrupt: true}}\n")
    assert main([*args, "--suite", str(per_entry), "--out", str(tmp_path / "o4")]) == 0
    for o in ("o2", "o3", "o4"):
        (rec,) = strict_load(tmp_path / o / "results.json")["results"]
        assert rec["skipped_corrupt"]["count"] == 2, o
    bad = _suite(tmp_path, f"skip_corrupt: yes please\ndatasets:\n{entry}}}\n")
    assert main([*args, "--suite", str(bad), "--out", str(tmp_path / "o5")]) == 2
    assert "'skip_corrupt' must be true or false" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["linear", "knn", "fewshot", "awareness"])
def test_every_eval_subcommand_accepts_skip_corrupt(protocol: str) -> None:
    from augself.cli import build_parser

    args = build_parser().parse_args(["eval", protocol, "--backbone", "x", "--data", "y", "--skip-corrupt"])
    assert args.skip_corrupt is True
    args = build_parser().parse_args(["transfer", "--suite", "s", "--runs", "r", "--out", "o", "--skip-corrupt"])
    assert args.skip_corrupt is True


# --------------------------------------------------------------------------------------- 11: transfer pre-check
def test_transfer_precheck_lists_every_unreadable_dataset_together(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_class = tmp_path / "emptyclass"
    (empty_class / "a").mkdir(parents=True)
    (empty_class / "b").mkdir()
    _corrupt(empty_class / "a" / "x.png")  # class b has no image: found without decoding anything
    suite = _suite(
        tmp_path,
        "datasets:\n"
        f"  - {{name: good, data: {env['data']}, protocols: [knn]}}\n"
        "  - {name: gone1, data: nowhere/one, protocols: [knn]}\n"
        "  - {name: gone2, data: nowhere/two, protocols: [linear]}\n"
        f"  - {{name: hollow, data: {empty_class}, protocols: [knn]}}\n"
        f"  - {{data: dtd, root: {tmp_path / 'nothing'}, protocols: [linear]}}\n",
    )
    out = tmp_path / "o"
    assert main(["transfer", "--suite", str(suite), "--runs", str(env["run"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        "augself transfer: error: 4 dataset(s) of the suite cannot be read (folders resolve against the suite "
        "file; named datasets are read from the entry's 'root', else $AUGSELF_DATA, else ./data):"
    )
    for item in ("* gone1: dataset folder", "* gone2: dataset folder", "* hollow: class folder", "* dtd: DTD not"):
        assert item in err
    assert "nowhere/one" in err and "nowhere/two" in err and "contains no images" in err
    assert not out.exists()


def test_awareness_default_folder_is_per_data_path_and_never_overwrites_another(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import augself.eval.awareness as aw

    outs: list[Path] = []

    def fake(backbones: list[Any], data: str, out: Path, **kw: Any) -> dict[str, Any]:
        outs.append(Path(out))
        return {"runs": [{}]}

    monkeypatch.setattr(aw, "run_awareness", fake)
    run = make_run(tmp_path / "run")
    a, b = tmp_path / "A" / "images", tmp_path / "B" / "images"
    for d in (a, b):
        d.mkdir(parents=True)
        assert main(["eval", "awareness", "--backbone", str(run), "--data", str(d)]) == 0
    assert outs == [run / "eval" / f"awareness-images-{_stem(a)}", run / "eval" / f"awareness-images-{_stem(b)}"]
    held = outs[0] / "awareness.json"
    held.parent.mkdir(parents=True)
    evaluation = {"protocol": "awareness", "backbones": [str(run / "backbone.pt")], "data": str(b)}
    held.write_text(json.dumps({"evaluation": evaluation}))  # another data folder's report in A's folder
    assert main(["eval", "awareness", "--backbone", str(run), "--data", str(a)]) == 2
    assert "already holds the awareness result of" in _one_error_line(capsys.readouterr().err)
    assert len(outs) == 2  # refused before any work
    held.write_text(json.dumps({"evaluation": {**evaluation, "data": str(a.resolve())}}))  # the same: a re-run
    assert main(["eval", "awareness", "--backbone", str(run), "--data", str(a)]) == 0 and len(outs) == 3
