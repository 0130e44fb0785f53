"""Hash functions used by the protocol (Fabric uses SHA-256 throughout)."""

import hashlib


def sha256(*parts: bytes) -> bytes:
    """SHA-256 over the concatenation of ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()
