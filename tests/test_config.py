"""Config loading: YAML + base inheritance + dotlist overrides, clear errors for bad input."""

from pathlib import Path

import pytest

from augself.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_and_overrides() -> None:
    cfg = load_config(None, ["augself.crop=1.0", "augself.color=0.5", "trainer.batch_size=64", "augment.size=16"])
    assert cfg.augself == {"crop": 1.0, "color": 0.5}
    assert cfg.trainer.batch_size == 64
    views = cfg.augment.build().views
    assert [v.size for v in views] == [16, 16]


def test_per_view_overrides_give_asymmetric_views() -> None:
    cfg = load_config(None, ["augment.views=[{blur_p: 1.0}, {blur_p: 0.1, sol_p: 0.2}]"])
    v1, v2 = cfg.augment.build().views
    assert (v1.blur_p, v1.sol_p, v2.blur_p, v2.sol_p) == (1.0, 0.0, 0.1, 0.2)


PRETRAIN_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "transfer")  # transfer: suites


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_load(path: Path) -> None:
    if path.name == "base.yaml":
        pytest.skip("base files are merged into the method files")
    cfg = load_config(path)
    assert cfg.out.startswith("runs/")
    if "augself" in path.stem:
        assert set(cfg.augself) == {"crop", "color"}
    else:
        assert not cfg.augself


def test_base_inheritance(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("trainer: {epochs: 7}\nmethod: byol\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nmethod: moco\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.trainer.epochs, cfg.method) == (7, "moco")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["augself.crpo=1.0"], "Did you mean 'crop'"),
        (["augself.crop=-1"], ">= 0"),
        (["augself.crop=abc"], "abc"),
        (["augment.flip_p=2"], "probability"),
        (["augment.crop_scale=[0.5, 0.2]"], "crop_scale"),
        (["trainer.batchsize=3"], "batchsize"),
        (["optim.name=sgdd"], "Did you mean 'sgd'"),
        (["trainer.batch_size"], "key=value"),
    ],
)
def test_bad_values_give_clear_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/x.yaml")


def test_cli_overrides_may_follow_options(tmp_path, capsys) -> None:
    from augself.cli import main

    # the trailing override reaches the config (and is rejected there by name), not argparse
    assert main(["pretrain", "method=simclr", "--out", str(tmp_path / "r"), "trainer.bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--out", str(tmp_path / "r"), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
