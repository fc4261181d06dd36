"""OMG core: the shared model, the task hook specifications and the plugin registry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("omg-seg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
