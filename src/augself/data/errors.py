"""Errors raised by the dataset readers; messages always show the expected on-disk layout."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset is missing, empty or laid out differently from what the reader expects.

    ``layout`` (when given) is appended to the message so the user sees what the reader looks for.
    """

    def __init__(self, message: str, layout: str | None = None) -> None:
        self.layout = layout
        if layout:
            message = f"{message}\nExpected layout:\n{layout.rstrip()}"
        super().__init__(message)


class CorruptImageError(DatasetError):
    """An image file could not be decoded (truncated, corrupt or not an image). Names the file."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = str(path)
        super().__init__(f"cannot decode image file {self.path!r}" + (f": {reason}" if reason else ""))
