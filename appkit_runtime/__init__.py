"""appkit_runtime: the shared runtime every appkit service imports."""

from appkit_runtime._version import __version__

__all__ = ["__version__"]
