"""Library versions recorded in every saved result."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "bayesmix",
    "pymc",
    "pytensor",
    "arviz",
    "arviz-stats",
    "nutpie",
    "numba",
    "numpy",
    "scipy",
    "pandas",
    "xarray",
    "matplotlib",
)


def versions() -> dict[str, str]:
    """{package: version} for the packages that shape the numbers, plus Python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
