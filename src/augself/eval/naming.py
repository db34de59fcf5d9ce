"""File-name-safe names for evaluation outputs (records, feature caches, report files)."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``.``, ``_``, ``-``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return s or "data"
