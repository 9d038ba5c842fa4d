"""Figure output: PNG bytes written atomically under figures/ and kept for inline embedding."""

from __future__ import annotations

import base64
import io
import struct
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from bayesmix.io import atomic_write

DPI = 150
CSS_DPI = 96


@dataclass(frozen=True)
class RenderedFigure:
    """One figure: its file (relative to the report), inline data URI, alt text and caption."""

    key: str
    file: str
    data_uri: str
    alt: str
    caption: str
    width: int  # CSS pixels


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG (Agg canvas; no timestamp in the metadata, so output is stable).

    The figures use constrained layout, so no ``bbox_inches="tight"`` (a second full draw)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def png_width(data: bytes) -> int:
    """Pixel width from the PNG IHDR chunk."""
    return struct.unpack(">I", data[16:20])[0]


class FigureSet:
    """Collects the figures of one report; each is written to ``out_dir/subdir/<key>.png``."""

    def __init__(self, out_dir: str | Path, subdir: str = "figures", dpi: int = DPI) -> None:
        self.out_dir = Path(out_dir)
        self.subdir = subdir
        self.dpi = dpi
        self.items: dict[str, RenderedFigure] = {}

    def add(self, key: str, fig: Figure, alt: str, caption: str) -> RenderedFigure:
        data = png_bytes(fig, self.dpi)
        rel = f"{self.subdir}/{key}.png"
        atomic_write(self.out_dir / rel, lambda p: p.write_bytes(data))
        return self._keep(key, rel, data, alt, caption)

    def add_file(
        self, key: str, path: str | Path, rel: str, alt: str, caption: str
    ) -> RenderedFigure | None:
        """An existing PNG (e.g. written by ``bayesmix compare``), embedded as it is."""
        path = Path(path)
        if not path.exists():
            return None
        return self._keep(key, rel, path.read_bytes(), alt, caption, dpi=110)

    def _keep(
        self, key: str, rel: str, data: bytes, alt: str, caption: str, dpi: int | None = None
    ) -> RenderedFigure:
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        width = round(png_width(data) * CSS_DPI / (dpi or self.dpi))
        item = RenderedFigure(key, rel, uri, alt, caption, width)
        self.items[key] = item
        return item

    def __getitem__(self, key: str) -> RenderedFigure | None:
        return self.items.get(key)
