"""Work-order-processing enclave (WPE) of a TCF worker pool.

It generates its own keys inside, is attested by the pool's KME, and processes work
orders with the keys the KME re-wrapped to it; results carry the KME's endorsement of
the WPE's verifying key (extVerificationKey, extVerificationKeySignature).
"""

from __future__ import annotations

import json

from heddle.tcf import crypto, processor
from heddle.tcf.codes import ErrorCode, TcfError

CONFIG: dict[str, object] = {}


def setup(ctx) -> None:
    keys = processor.WorkerKeys.generate()
    ctx.add_public_key("tcf.verifying", crypto.public_der(keys.signing))
    ctx.add_public_key("tcf.encryption", crypto.public_der(keys.encryption))
    endorsement: dict[str, str] = {}

    @ctx.host_handler("wpe.endorse")
    def endorse(body: bytes) -> bytes:
        doc = json.loads(body)
        if doc.get("extVerificationKey") != keys.verification_key:
            raise PermissionError("the endorsement is for another WPE")
        endorsement.update(
            {k: str(doc[k]) for k in ("workerId", "extVerificationKey", "extVerificationKeySignature")}
        )
        return b"ok"

    @ctx.host_handler("wpe.process")
    def process(body: bytes) -> bytes:
        if not endorsement:
            raise RuntimeError("this WPE has not joined a pool")
        doc = json.loads(body)
        rewrapped: dict[str, str] = doc.get("keys", {})

        def unwrap(wrapped: str) -> bytes:
            mine = rewrapped.get(wrapped)
            if mine is None:
                raise crypto.CryptoError("the KME released no key for this item")
            return crypto.unwrap_key(keys.encryption, mine)

        try:
            result = processor.process(
                keys,
                doc["params"],
                worker_id=endorsement["workerId"],
                unwrap=unwrap,
                endorsement=endorsement,
            )
        except TcfError as exc:
            return json.dumps({"error": exc.to_json()}).encode()
        except Exception as exc:  # reported as a failure, never a stuck order
            err = TcfError(ErrorCode.UNKNOWN_ERROR, f"work order failed: {type(exc).__name__}")
            return json.dumps({"error": err.to_json()}).encode()
        return json.dumps({"result": result}).encode()
