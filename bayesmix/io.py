"""Atomic file output: a failed run never leaves a half-written file over a good one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: object) -> Path:
    """Atomically write JSON (numpy scalars and arrays allowed)."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_datatree(path: str | Path, dt) -> Path:
    """Atomically write a DataTree as compressed netCDF (h5netcdf, zlib level 4)."""
    encoding = {
        node.path: {name: {"zlib": True, "complevel": 4} for name in node.data_vars}
        for node in dt.subtree
        if node.data_vars
    }
    return atomic_write(path, lambda p: dt.to_netcdf(p, engine="h5netcdf", encoding=encoding))
