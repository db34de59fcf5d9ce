"""Transfer suites read data folders through ``${oc.env:VAR,default}`` (configs/transfer/small.yaml: $AUGSELF_DATA),
so the example suite does not depend on where the repository sits; a missing folder is one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from augself.data.errors import DatasetError
from augself.eval.transfer import load_suite

SMALL = Path(__file__).resolve().parents[1] / "configs" / "transfer" / "small.yaml"
SETS = ("cifar10-small", "dtd10-64", "food10-64")


def _sets(root: Path) -> Path:
    for name in SETS:
        (root / name / "train" / "a").mkdir(parents=True)
    return root


def test_small_suite_reads_augself_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _sets(tmp_path / "sets")
    monkeypatch.setenv("AUGSELF_DATA", str(root))
    s = load_suite(SMALL)
    assert [d["data"].path for d in s["datasets"]] == [(root / n).resolve() for n in SETS]


def test_relative_env_value_resolves_against_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sets(tmp_path / "sets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGSELF_DATA", "sets")
    s = load_suite(SMALL)  # the suite sits elsewhere: "sets" is not read against configs/transfer/
    assert s["datasets"][0]["data"].path == (tmp_path / "sets" / "cifar10-small").resolve()


def test_default_resolves_against_suite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSELF_DATA", raising=False)
    suite = tmp_path / "repo" / "configs" / "transfer" / "small.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SMALL.read_text())
    _sets(tmp_path / "shared" / "data")  # ../../../shared/data from the suite's folder
    monkeypatch.chdir(tmp_path / "repo")
    s = load_suite(suite)
    assert s["datasets"][2]["data"].path == (tmp_path / "shared" / "data" / "food10-64").resolve()


def test_missing_folder_is_one_line_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSELF_DATA", raising=False)
    suite = tmp_path / "a" / "b" / "c" / "small.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(SMALL.read_text())
    with pytest.raises(DatasetError) as e:
        load_suite(suite)
    msg = str(e.value)
    assert "\n" not in msg
    assert "AUGSELF_DATA is not set" in msg and "set AUGSELF_DATA to the folder that holds" in msg
    assert str((tmp_path / "shared" / "data").resolve()) in msg
    assert "cifar10-small/, dtd10-64/, food10-64/" in msg and "<set>/{train,test}/<class>/<image>" in msg
    monkeypatch.setenv("AUGSELF_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"\$AUGSELF_DATA='.*nowhere'"):
        load_suite(suite)


def test_unset_variable_without_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSELF_TEST_UNSET", raising=False)
    suite = tmp_path / "s.yaml"
    suite.write_text("datasets:\n  - {data: '${oc.env:AUGSELF_TEST_UNSET}/x', protocols: [knn]}\n")
    with pytest.raises(ValueError, match=r"needs the environment variable AUGSELF_TEST_UNSET, which is not set"):
        load_suite(suite)
