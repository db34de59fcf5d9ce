"""The package version (``pyproject.toml``'s ``version``): a leaf module, so that :mod:`augself.models.backbones`
can record it without importing the ``augself`` package that imports it."""

__version__ = "0.1.0"
