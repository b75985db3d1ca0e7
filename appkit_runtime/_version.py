"""The one place the runtime's version lives; template tags `vX.Y.Z` follow it."""

__version__ = "0.1.0"
