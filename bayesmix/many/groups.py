"""Group keys: their directory names and their seeds (independent of scheduling)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def key_digest(key: str) -> bytes:
    """sha256 of the key's UTF-8 text: stable across processes, machines and Python versions
    (unlike ``hash()``, which is salted per process)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def group_seed(run_seed: int, key: str) -> int:
    """The seed of group ``key``: numpy's SeedSequence over the run seed and the key's sha256,
    so a group gets the same numbers whatever the order, the workers or the other groups."""
    words = np.frombuffer(key_digest(key), dtype=np.uint32)
    seq = np.random.SeedSequence([int(run_seed), *map(int, words)])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def group_dir_name(key: str) -> str:
    """A file-system-safe, unique directory name: the key itself when it is safe, else the
    key with unsafe characters replaced, plus 8 hex digits of its sha256."""
    safe = _UNSAFE.sub("_", key).strip("._")
    if safe == key and safe:
        return safe
    return f"{safe[:60] or 'group'}-{key_digest(key).hex()[:8]}"
