"""The package version (one place, read by setup.cfg and by the Dask workers' check)."""

__version__ = "0.1.0"
