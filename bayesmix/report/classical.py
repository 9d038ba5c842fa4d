"""The report's EM comparison: ``bayesmix.classical`` numbers, cached in the fit directory."""

from __future__ import annotations

from bayesmix.classical import CACHE_NAME, SCHEMA, cached_em_selection, em_selection

__all__ = ["CACHE_NAME", "SCHEMA", "cached_em_selection", "em_selection"]
