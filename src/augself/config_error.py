"""The user-error class of configuration handling (the CLI prints its one-line message and exits with status 2)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks, control characters and undecodable file-name bytes (lone surrogates) escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class ConfigError(ValueError):
    """A user error in a configuration file or override, or a setting this machine cannot run.

    The message is always one printable line: user text quoted in it (a key, a path) cannot break it.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))
