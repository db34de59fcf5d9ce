"""Validation of user-given names with a helpful message (valid names and the closest match)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_match_hint(name: object, valid: Iterable[str], prefix: str = "") -> str:
    """`` Did you mean 'prefix+closest'?`` for the closest of ``valid`` (``difflib``), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" Did you mean {prefix + close[0]!r}?" if close else ""


def unknown_name_message(name: object, valid: Iterable[str], what: str) -> str:
    valid = sorted(valid)
    return f"unknown {what} {name!r}; valid names: {', '.join(valid)}.{close_match_hint(name, valid)}"


def check_name(name: object, valid: Iterable[str], what: str) -> str:
    """Return ``name`` if it is valid, else raise ``ValueError`` listing the valid names."""
    valid = list(valid)
    if name not in valid:
        raise ValueError(unknown_name_message(name, valid, what))
    return str(name)
