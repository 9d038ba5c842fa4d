"""Many fits: one mixture per group of a data set (``bayesmix fit-many``, ``fit_many``)."""

from __future__ import annotations

__all__ = ["fit_many"]


def __getattr__(name: str):
    if name == "fit_many":
        from bayesmix.many.run import fit_many

        return fit_many
    raise AttributeError(f"module 'bayesmix.many' has no attribute {name!r}")
