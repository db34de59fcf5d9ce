"""The config checks that do not lean on OmegaConf: strict YAML, override parsing, shapes, method arguments, devices.

``pyproject.toml`` allows omegaconf >= 2.3; 2.3 neither checks tuple lengths nor returns tuples (``to_object`` gives
lists), so these tests feed our checks exactly what 2.3 would hand them.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from augself.config import ConfigError, load_config, validate
from augself.config_checks import check_method_args, check_shapes, method_parameters, parse_devices
from augself.config_yaml import MAX_NODES, parse_override, parse_yaml
from augself.methods import METHODS


# ------------------------------------------------------------------------------------------ what omegaconf 2.3 returns
def test_tuple_fields_from_omegaconf_23_are_checked_and_converted() -> None:
    cfg = load_config(None, [])
    cfg.augment.crop_scale = []  # type: ignore[assignment]  # OmegaConf 2.3: a list, of any length
    with pytest.raises(ConfigError, match=r"^augment.crop_scale must be a list of 2 numbers, got length 0: \[\]$"):
        validate(cfg)
    cfg = load_config(None, [])
    cfg.augment.crop_scale, cfg.optim.betas = [0.3, 1.0], [0.9, 0.99]  # type: ignore[assignment]
    validate(cfg)
    assert cfg.augment.crop_scale == (0.3, 1.0) and cfg.optim.betas == (0.9, 0.99)  # tuples, as under 2.4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"augment": {"crop_scale": []}}, "augment.crop_scale must be a list of 2 numbers, got length 0"),
        ({"augment": {"crop_scale": [0.1, 0.5, 1]}}, "augment.crop_scale must be a list of 2 numbers, got length 3"),
        ({"augment": {"crop_scale": ["a", "b"]}}, "augment.crop_scale must be a list of 2 numbers, got ['a', 'b']"),
        ({"augment": {"crop_scale": [True, 1]}}, "augment.crop_scale must be a list of 2 numbers"),
        ({"augment": {"mean": 0.5}}, "augment.mean must be a list of numbers, got 0.5"),
        ({"optim": {"betas": [0.9]}}, "optim.betas must be a list of 2 numbers, got length 1"),
        ({"augment": {"views": [{"crop_ratio": [1]}]}}, "augment.views[0].crop_ratio must be a list of 2 numbers"),
        ({"augment": {"views": [{"sizee": 3}]}}, "unknown key 'augment.views[0].sizee' (here); valid keys: size,"),
        ({"augment": {"views": {"size": 3}}}, "augment.views must be a list"),
        ({"augment": 3}, "augment must be a mapping of settings"),
        ({"method_args": [1]}, "method_args must be a mapping (name: value), got [1]"),
        ({"trainer": {"loggers": "csv"}}, "trainer.loggers must be a list, e.g. [csv, tensorboard], got 'csv'"),
    ],
)
def test_shapes_of_raw_documents(raw: dict, message: str) -> None:
    from augself.augment.config import ViewConfig
    from augself.config import PretrainConfig

    with pytest.raises(ConfigError) as info:
        check_shapes(raw, PretrainConfig, " (here)", view_schema=ViewConfig)
    assert message in str(info.value)


def test_interpolations_and_nulls_are_left_to_omegaconf() -> None:
    from augself.config import PretrainConfig

    check_shapes({"augment": {"crop_scale": "${augment.blur_sigma}", "views": None}}, PretrainConfig)
    cfg = load_config(None, ["augment.crop_scale=${augment.crop_ratio}", "augment.crop_ratio=[0.5,0.9]"])
    assert cfg.augment.crop_scale == (0.5, 0.9)


# ------------------------------------------------------------------------------------------ YAML and overrides
def test_yaml_is_strict_and_safe(tmp_path: Path) -> None:
    assert parse_yaml("a: 1e-3\nb: 2001-01-01\nc: .inf\n<<: {d: 1}\n", "f") == {
        "a": 0.001,  # a float, as OmegaConf reads it (YAML 1.1 would give the string '1e-3')
        "b": "2001-01-01",  # no datetime objects
        "c": float("inf"),
        "d": 1,
    }
    with pytest.raises(ConfigError, match=r"^f, line 3, column 1: duplicate key 'a' \(each key may appear once\)$"):
        parse_yaml("a: 1\nb: 2\na: 3\n", "f")
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        parse_yaml("a: {x: 1, x: 2}\n", "f")
    parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n", "f")  # a merge key may be overridden
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        parse_yaml(f"a: !!python/object/apply:os.mkdir ['{marker}']\n", "f")
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"tag:yaml\.org,2002:binary"):
        parse_yaml("a: !!binary aGk=\n", "f")
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)
    )
    with pytest.raises(ConfigError, match=f"expands to more than {MAX_NODES} values"):
        parse_yaml(bomb, "f")
    assert parse_yaml("a: ._\n", "f") == {"a": "._"}  # not a float (the regex OmegaConf 2.3 uses took it for one)
    with pytest.raises(ConfigError, match=r"^f: invalid YAML value: invalid literal for int\(\) with base 2"):
        parse_yaml("a: 0b_\n", "f")  # the int resolver's pattern, but no digits
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_yaml("[" * 20000, "f")


def test_override_parsing() -> None:
    assert parse_override("trainer.epochs=3") == {"trainer": {"epochs": 3}}
    assert parse_override("out=") == {"out": None}
    assert parse_override("data.name=a=b") == {"data": {"name": "a=b"}}
    assert parse_override("augment.views=[{blur_p: 1.0}, {}]") == {"augment": {"views": [{"blur_p": 1.0}, {}]}}
    for bad in ("=1", "a..b=1", "a.0=1", "a b=1", ".a=1"):
        with pytest.raises(ConfigError, match="overrides must look like key=value"):
            parse_override(bad)
    with pytest.raises(ConfigError, match=r"^out: the value 'x\\udcff' holds bytes that are not valid UTF-8"):
        parse_override("out=x\udcff")


# ------------------------------------------------------------------------------------------ method arguments, devices
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_accepts_its_own_defaults(method: str) -> None:
    """The signature check is no stricter than the method itself: each keyword with its default value passes."""
    params = method_parameters(method)
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    check_method_args(method, defaults)
    assert "num_classes" not in params and "backbone" not in params
    with pytest.raises(ConfigError, match=f"unknown method_args.not_an_arg for method '{method}'"):
        check_method_args(method, {"not_an_arg": 1})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"queue_size": "big"}, "method_args.queue_size must be an integer, got 'big'"),
        ({"queue_size": 1.5}, "method_args.queue_size must be an integer"),
        ({"queue_size": True}, "method_args.queue_size must be an integer"),
        ({"queue_size": 0}, "method_args.queue_size must be >= 1"),
        ({"temperature": float("nan")}, "method_args.temperature must be a finite number"),
        ({"momentum": 1.5}, "method_args.momentum must be in [0, 1]"),
        ({"enqueue": "value"}, "method_args.enqueue must be one of key, query, got 'value'"),
        ({"proj_dim": None}, "method_args.proj_dim must not be null"),
        ({"queu_size": 8}, "Did you mean 'queue_size'?"),
    ],
)
def test_method_args_values(args: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_method_args("moco", args)
    assert message in str(info.value)
    check_method_args("moco", {"proj_hidden_dim": None, "temperature": 1, "queue_size": 4096})  # int for a float


@pytest.mark.parametrize(
    ("devices", "parsed"), [("auto", "auto"), (1, 1), (-1, -1), ("2", 2), ("0,1", [0, 1]), ([1, 0], [1, 0])]
)
def test_devices_forms(devices: object, parsed: object) -> None:
    assert parse_devices(devices) == parsed


@pytest.mark.parametrize("devices", ["abc", 0, -2, 1.5, True, [], [0, 0], [-1], ["a"], {"a": 1}, None, "1,a"])
def test_bad_devices(devices: object) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.devices must be auto, a device count >= 1"):
        parse_devices(devices)


# ------------------------------------------------------------------------------------------ config.yaml round trip
@pytest.mark.parametrize("name", ["${x}", "\\${x}", "a\\b", "\\\\${y}", "$", "caf\u00e9", "'${z}'"])
def test_written_config_loads_back_unchanged(name: str, tmp_path: Path) -> None:
    """``config.yaml`` (``to_yaml``) holds resolved values: a literal ``${`` in a string stays text on reloading."""
    from augself.config import to_yaml

    cfg = load_config(None, ["augself.crop=1", "augment.views=[{blur_p: 1.0}, {}]"])
    cfg.data.name = name
    (tmp_path / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    assert load_config(tmp_path / "config.yaml") == cfg
