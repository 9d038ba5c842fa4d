"""Where numba caches the compiled kernels: a directory keyed by the package's numba sources.

numba's on-disk cache notices a change in the file that defines a function, but not in a
function it calls from another file (numba issues #6845, #10128): after the engines were split
into ``engines/gibbs``, ``kernels`` and ``mixings``, a stale kernel could survive an edit. The
cache therefore lives in ``<user cache>/bayesmix/numba/<version>-<hash>``, the hash taken over
every module that holds numba code, so any edit (or upgrade) starts a fresh cache. A
``NUMBA_CACHE_DIR`` set by the user is respected as it is.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).parent


def source_hash() -> str:
    """sha256 (12 hex digits) of every package module that uses numba, in path order."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_bytes()
        if b"numba" in text:
            h.update(str(path.relative_to(PACKAGE)).encode())
            h.update(text)
    return h.hexdigest()[:12]


def configure(version: str) -> None:
    """Set NUMBA_CACHE_DIR (before numba is imported) unless the user has set it."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = base / "bayesmix" / "numba" / f"{version}-{source_hash()}"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: numba's default (__pycache__ beside the sources)
        return
    os.environ["NUMBA_CACHE_DIR"] = str(target)
