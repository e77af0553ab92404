"""Cache files that prove their own integrity: written atomically, read back only if their digest holds.

A cache entry cut short by a killed run, or damaged on disk, must never be used as if it were
good: it is reported by name, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
DIGEST_BYTES = 32  # sha256, appended to the payload


def write_checked(path: Path, payload: bytes) -> None:
    """payload + its sha256, through a temporary file: readers see the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload + hashlib.sha256(payload).digest())
    tmp.replace(path)


def read_checked(path: Path) -> bytes | None:
    """The payload, or None when the file is absent or fails its digest (then it is removed, with a warning)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    payload, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if len(data) < DIGEST_BYTES or hashlib.sha256(payload).digest() != digest:
        discard(path, "truncated or corrupted (its checksum does not match)")
        return None
    return payload


def discard(path: Path, reason: str) -> None:
    log.warning("cache entry %s is %s: removed, it will be recomputed", path, reason)
    path.unlink(missing_ok=True)
