"""The installed distribution's version, single-sourced from its pyproject.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("p2p-ueps")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
