"""The package version: one place, below every other module (pyproject.toml reads it too:
``[tool.setuptools.dynamic]``)."""

__version__ = "0.1.0"
