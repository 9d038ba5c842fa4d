"""Reports of fits and comparisons: self-contained HTML and Markdown with figures.

``render_fit_report(fit_dir)`` and ``render_compare_report(compare_dir)`` are imported lazily,
so ``import bayesmix.report`` stays light (no matplotlib or Jinja until a report is rendered).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["render_compare_report", "render_fit_report"]

if TYPE_CHECKING:  # pragma: no cover
    from bayesmix.report.render import render_compare_report, render_fit_report


def __getattr__(name: str):
    if name in __all__:
        from bayesmix.report import render

        return getattr(render, name)
    raise AttributeError(f"module 'bayesmix.report' has no attribute {name!r}")
