"""How fast could this machine go doing nothing but a transaction's signatures?

A single-core microbenchmark of ECDSA P-256 sign and verify, and the count of signature
operations one transaction needs in a topology, give ``crypto_limit_tps``: the throughput
all cores could reach spending their whole time on signatures. A system's ``tps`` divided
by it (the ``ratio``) says how much of the machine goes to anything else.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class SignatureCount:
    """Signature operations per transaction (block signatures amortised over the block)."""

    signs: float
    verifies: float
    detail: dict

    def as_dict(self) -> dict:
        return asdict(self)


def count_signatures(endorsers: int, committing_peers: int, block_size: float) -> SignatureCount:
    """Count what one endorser transaction costs in signatures, end to end.

    signs: the client's proposal, one endorsement per endorser, the client's envelope, and the
    orderer's block signature shared by the transactions of a block.
    verifies: each endorser checks the proposal; the orderer checks the envelope; every
    committing peer checks the envelope, every endorsement and the block signature (shared).
    """
    per_block = 1.0 / max(block_size, 1.0)
    signs = 1 + endorsers + 1 + per_block
    verifies = endorsers + 1 + committing_peers * (1 + endorsers + per_block)
    detail = {
        "client_proposal_sign": 1,
        "endorsement_signs": endorsers,
        "client_envelope_sign": 1,
        "orderer_block_sign": per_block,
        "endorser_proposal_verifies": endorsers,
        "orderer_envelope_verify": 1,
        "peer_envelope_verifies": committing_peers,
        "peer_endorsement_verifies": committing_peers * endorsers,
        "peer_block_verifies": committing_peers * per_block,
    }
    return SignatureCount(signs, verifies, detail)


@dataclass(frozen=True)
class EcdsaSpeed:
    sign_us: float
    verify_us: float
    samples: int


def measure_ecdsa(seconds: float = 1.0, message_size: int = 1024, rounds: int = 5) -> EcdsaSpeed:
    """Single-core P-256/SHA-256 sign and verify time, in microseconds per operation: the
    fastest of ``rounds`` short rounds, so other work on a shared machine does not inflate it
    (as timeit takes the minimum)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    msg = os.urandom(message_size)
    algo = ec.ECDSA(hashes.SHA256())

    def per_op(fn) -> tuple[float, int]:
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(50):
                fn()
            n += 50
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 2:
                return elapsed / n * 1e6, n

    sig = key.sign(msg, algo)
    rounds = max(1, rounds)
    seconds = seconds / rounds
    signs = [per_op(lambda: key.sign(msg, algo)) for _ in range(rounds)]
    verifies = [per_op(lambda: pub.verify(sig, msg, algo)) for _ in range(rounds)]
    samples = sum(n for _, n in signs) + sum(n for _, n in verifies)
    return EcdsaSpeed(min(t for t, _ in signs), min(t for t, _ in verifies), samples)


def crypto_limit_tps(speed: EcdsaSpeed, count: SignatureCount, cores: int | None = None) -> float:
    cores = cores or os.cpu_count() or 1
    seconds_per_tx = (count.signs * speed.sign_us + count.verifies * speed.verify_us) / 1e6
    return cores / seconds_per_tx
