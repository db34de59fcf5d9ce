"""The user-error class of configuration handling (the CLI prints its one-line message and exits with status 2)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user error in a configuration file or override, or a setting this machine cannot run."""
