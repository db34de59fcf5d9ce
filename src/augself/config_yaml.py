"""Strict, safe YAML for configuration files and ``key=value`` overrides, the same under every OmegaConf version.

Safe loading only (no Python objects), and stricter than YAML itself where a config would silently mean something
else: a key given twice in one mapping is an error (YAML 1.2 forbids it; PyYAML keeps the last one), keys must be
names, and ``!!binary`` / ``!!timestamp`` / ``!!set`` values are refused (OmegaConf cannot hold them). Numbers
such as ``1e-3`` are floats (YAML 1.1 would read a string), as in OmegaConf's own loader. Aliases may not expand a
document beyond :data:`MAX_NODES` values (a "billion laughs" file is refused, not expanded).
Every problem raises :class:`augself.config.ConfigError` with one line naming the file (or override) and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from augself.config_error import ConfigError

MAX_NODES = 10_000
"""Values a config may expand to (OmegaConf 2.4's default alias-expansion limit; ours are < 300)."""

MAX_DEPTH = 100
"""Nesting levels of flow collections (``[``, ``{``) a document may use; ours use at most 3."""

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_REFUSED_TAGS = ("binary", "timestamp", "set", "omap", "pairs")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with duplicate-key and key-type checks and YAML 1.2 floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key_node.start_mark
                )
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r} (each key may appear once)", key_node.start_mark
                )
            seen.add(key_node.value)
        mapping = super().construct_mapping(node, deep=deep)
        for key in mapping:
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got {key!r}", node.start_mark
                )
        return mapping


def _refuse(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"values tagged {node.tag!r} are not supported in configs", node.start_mark
    )


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
for _tag in _REFUSED_TAGS:
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def _count_nodes(value: Any, limit: int) -> int:
    """Values in ``value`` with aliases expanded, counting stops past ``limit`` (also ends recursive aliases)."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _yaml_message(e: yaml.YAMLError, source: str) -> str:
    """One line: where (file or override, line and column) and what."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        what = " ".join(str(e.problem or e.context or "").split())
        if what.startswith(("duplicate key", "a key must", "values tagged")):
            return f"{where}: {what}"
        return f"{where}: invalid YAML: {what}"
    return f"{source}: invalid YAML: {' '.join(str(e).splitlines()[0].split())}"


def _flow_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` (brackets inside quoted strings count too: an upper bound)."""
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", text):
        depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` (from ``source``, a file name or an override, used in messages)."""
    if _flow_depth(text) > MAX_DEPTH:  # PyYAML's pure-Python scanner takes seconds on thousands of open brackets
        raise ConfigError(f"{source}: the YAML is nested too deeply (more than {MAX_DEPTH} levels of [ or {{)")
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no Python objects
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_message(e, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # a scalar its resolver accepts, its constructor not: 0b_
        raise ConfigError(f"{source}: invalid YAML value: {e}") from None
    if _count_nodes(value, MAX_NODES) > MAX_NODES:
        raise ConfigError(f"{source}: the YAML expands to more than {MAX_NODES} values (recursive or nested aliases?)")
    return value


def load_yaml_file(path: Path) -> dict[str, Any]:
    """A config file: a mapping of settings (an empty file is an empty mapping)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} (offset {e.start}); save it as UTF-8"
        ) from None
    value = parse_yaml(text, str(path))
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys (key: value lines), not a {type(value).__name__}")
    return value


def parse_override(override: str) -> dict[str, Any]:
    """``"a.b=value"`` -> ``{"a": {"b": value}}``, the value read as YAML (``a.b=`` gives ``None``)."""
    key, sep, text = override.partition("=")
    parts = key.split(".")
    if not sep or not all(_KEY.match(p) for p in parts):
        raise ConfigError(
            f"overrides must look like key=value with a dotted key such as trainer.epochs=10, got {override!r}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{key}: the value {text!r} holds bytes that are not valid UTF-8 (a file name in another encoding?); "
            "rename it or use a UTF-8 path"
        ) from None
    value: Any = parse_yaml(text, f"override {override!r}")
    for part in reversed(parts):
        value = {part: value}
    return value
