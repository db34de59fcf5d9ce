"""Validation of user-given names with a helpful message (valid names and the closest match)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name_message(name: object, valid: Iterable[str], what: str) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}; valid names: {', '.join(valid)}.{hint}"


def check_name(name: object, valid: Iterable[str], what: str) -> str:
    """Return ``name`` if it is valid, else raise ``ValueError`` listing the valid names."""
    valid = list(valid)
    if name not in valid:
        raise ValueError(unknown_name_message(name, valid, what))
    return str(name)
