"""Errors raised by the dataset readers; messages always show the expected on-disk layout."""

from __future__ import annotations

import re


class DatasetError(ValueError):
    """A dataset is missing, empty or laid out differently from what the reader expects.

    ``layout`` (when given) is appended to the message so the user sees what the reader looks for.
    """

    def __init__(self, message: str, layout: str | None = None) -> None:
        self.layout = layout
        if layout:
            message = f"{message}\nExpected layout:\n{layout.rstrip()}"
        super().__init__(message)


SKIP_HINT = (
    "pass --skip-corrupt (pretraining: data.skip_corrupt=true; transfer suites: skip_corrupt: true)"
    " to skip unreadable files and count them"
)


class CorruptImageError(DatasetError):
    """An image file could not be decoded (truncated, corrupt or not an image). Names the file."""

    def __init__(self, path: str, reason: str = "") -> None:
        path = str(path)
        if not reason and path.startswith("Caught ") and "\n" in path:
            # Re-raised from a DataLoader worker: torch passes "Caught ... Original Traceback ..." as the only
            # argument. Keep the original one-line message (the traceback's last line).
            last = path.rstrip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
            found = re.search(r"cannot decode image file '(.*?)'", message)
            self.path = found.group(1) if found else message
            self.layout = None
            Exception.__init__(self, message)
            return
        self.path = path
        super().__init__(
            f"cannot decode image file {self.path!r}" + (f": {reason}" if reason else "") + f" ({SKIP_HINT})"
        )
