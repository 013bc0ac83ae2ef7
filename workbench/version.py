"""The package version (one place; the root package and vector file headers read it)."""

__version__ = "0.1.0"
