"""Cross-hospital analytics: each hospital keeps its records encrypted under its own key.

A hospital encrypts its patient records once (AES-256-GCM, fresh IV) and publishes only
the ciphertext and its hash (``EncryptedDataset``: what goes on the ledger). It
releases its data key to a worker only after the worker's attestation verifies under
the *hospital's own* policy, and then only wrapped to that worker's enclave-held
encryption key. A worker whose measurement the hospital does not allow never receives
the key: ``release_key`` raises ``AttestationError`` before wrapping anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from heddle.tcf import crypto
from heddle.tcf.requester import SealedItem
from heddle.tcf.signup import WorkerInfo, verify_signup
from heddle.tee import EvidenceVerifier, VerificationPolicy


def cleveland_csv() -> bytes:
    """The UCI Cleveland heart-disease data shipped with heddle (CC BY 4.0, see data/README.md)."""
    return resources.files("heddle.tcf").joinpath("data/heart_cleveland.csv").read_bytes()


def split_records(csv: bytes, parts: int = 2) -> list[bytes]:
    """Split a CSV into ``parts`` contiguous shares, each with the header row."""
    lines = csv.decode("utf-8").strip().splitlines()
    header, rows = lines[0], lines[1:]
    size = -(-len(rows) // parts)
    return [("\n".join([header, *rows[i * size : (i + 1) * size]]) + "\n").encode() for i in range(parts)]


@dataclass(frozen=True)
class EncryptedDataset:
    """What a hospital publishes: ciphertext and hashes, never the key or the rows."""

    owner: str
    data: str  # base64 AES-256-GCM ciphertext with tag
    iv: str
    data_hash: str  # hex SHA-256 of the plaintext
    ciphertext_hash: str  # hex SHA-256 of the ciphertext bytes


@dataclass
class Hospital:
    name: str
    records: bytes = field(repr=False)
    policy: VerificationPolicy
    verifiers: Iterable[EvidenceVerifier] | Mapping[str, EvidenceVerifier]
    _key: bytes = field(default_factory=crypto.new_key, repr=False)
    released_to: list[str] = field(default_factory=list)
    _published: EncryptedDataset | None = field(default=None, repr=False)

    def publish(self) -> EncryptedDataset:
        """Encrypt the records once; return the publishable ciphertext and hashes."""
        if self._published is None:
            cipher, iv = crypto.encrypt(self._key, self.records)
            self._published = EncryptedDataset(
                self.name,
                crypto.b64(cipher),
                iv.hex(),
                crypto.data_hash(self.records),
                crypto.data_hash(cipher),
            )
        return self._published

    def release_key(self, worker: WorkerInfo) -> SealedItem:
        """The dataset as a work order input, its key wrapped to ``worker``, if the policy allows.

        Raises ``AttestationError`` (and releases nothing) if the worker's evidence does
        not satisfy this hospital's policy.
        """
        verify_signup(worker, policy=self.policy, verifiers=self.verifiers)
        dataset = self.publish()
        wrapped = crypto.wrap_key(worker.encryption_key, self._key)
        self.released_to.append(worker.worker_id)
        return SealedItem(dataset.data, dataset.iv, dataset.data_hash, wrapped)


__all__ = ["EncryptedDataset", "Hospital", "cleveland_csv", "split_records"]
