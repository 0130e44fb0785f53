"""The virtual enclave's measurement: SHA-256 over the exact code it loads.

The measured code is the enclave runtime (the files named in ``RUNTIME_FILES``, in
that order) and the enclave application's bytes. Each part is hashed with its name
and length so that moving bytes between parts changes the measurement.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

DOMAIN = b"heddle.tee.virtual-enclave.v1\x00"
RUNTIME_FILES = (
    "__init__.py",
    "_loader.py",
    "wire.py",
    "measure.py",
    "sealing.py",
    "evidence.py",
    "tls.py",
    "runtime.py",
)
APPLICATION = "application"


def measure(runtime: Mapping[str, bytes], application: bytes) -> bytes:
    """Return the 32-byte measurement of ``runtime`` files plus ``application``."""
    h = hashlib.sha256(DOMAIN)
    for name in RUNTIME_FILES:
        _part(h, name, runtime[name])
    _part(h, APPLICATION, application)
    return h.digest()


def _part(h: hashlib._Hash, name: str, data: bytes) -> None:
    n = name.encode()
    h.update(struct.pack(">H", len(n)) + n + struct.pack(">Q", len(data)))
    h.update(data)
