"""Proxy mode, client side: TCF methods as transactions on the ``tcf`` chaincode.

``LedgerTransport`` is a ``Transport`` for ``TcfClient``: methods that change state
(WorkerRegister, WorkOrderSubmit, WorkOrderReceiptCreate, ...) are endorsed, ordered and
waited for through heddle.client's Gateway; lookups and WorkOrderGetResult are
evaluated on a peer. A chaincode refusal (``TCF error <code>: <message>``) becomes the
same ``RpcError`` a direct-mode listener answers with, so the client verifies, decrypts
and checks receipts exactly as in direct mode.

A transaction that loses an MVCC race (the connector completing the work order while
the requester creates its receipt) is endorsed again against the new state.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_protos.peer import transaction_pb2

from heddle.client import (
    CommitError,
    Contract,
    GatewayError,
    connect,
    identity_from_msp_dir,
    signer_from_msp_dir,
    tls_channel,
)
from heddle.tcf.client import RpcError

CHAINCODE = "tcf"
SUBMITTED = frozenset(
    {
        "WorkerRegister",
        "WorkerUpdate",
        "WorkerSetStatus",
        "WorkOrderSubmit",
        "WorkOrderReceiptCreate",
        "WorkOrderReceiptUpdate",
        "EncryptionKeySet",
    }
)
LAGGING_PEER_WAIT = 15.0  # seconds to wait for another endorsing peer to catch up
_RETRIED = frozenset({transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT})
_TCF_ERROR = re.compile(r"TCF error (-?\d+): (.*?)(?:; \S+:\d+ \(|$)", re.S)


def tcf_error(exc: GatewayError) -> RpcError | None:
    """The TCF refusal inside a gateway error, if the chaincode refused the call."""
    texts = [d.message for d in exc.details] + [exc.message, str(exc)]
    for text in texts:
        m = _TCF_ERROR.search(text)
        if m:
            return RpcError(int(m.group(1)), m.group(2).strip())
    return None


@dataclass(frozen=True)
class LedgerTx:
    """A committed transaction: its id, block and function (for the story and for tests)."""

    function: str
    transaction_id: str
    block_number: int


@dataclass(frozen=True)
class LedgerUser:
    """A ledger client: a user of one org at that org's peer, from ``heddle up``'s network.json."""

    data_dir: Path
    org: int = 0
    user: str = "User1"

    def describe(self) -> dict[str, Any]:
        return json.loads((Path(self.data_dir) / "network.json").read_text())

    def contract(self, chaincode: str = CHAINCODE) -> tuple[Contract, Any]:
        """(contract, grpc channel); close the channel when done."""
        doc = self.describe()
        peer = doc["peers"][self.org]
        default_user = Path(peer["userMSP"]).parent  # .../users/User1@org1.example.com
        domain = default_user.name.partition("@")[2]
        msp_dir = default_user.parent / f"{self.user}@{domain}" / "msp"
        channel = tls_channel(peer["address"], peer["tlsCA"], server_name_override=peer["name"])
        identity = identity_from_msp_dir(msp_dir, peer["mspid"])
        gateway = connect(identity, signer_from_msp_dir(msp_dir), channel)
        return gateway.get_network(doc["channel"]).get_contract(chaincode), channel

    @property
    def mspid(self) -> str:
        return str(self.describe()["peers"][self.org]["mspid"])


class LedgerTransport:
    """TCF methods over the ``tcf`` chaincode (proxy mode)."""

    def __init__(self, contract: Contract, *, channel: Any = None, retries: int = 5) -> None:
        self.contract = contract
        self._channel = channel
        self.retries = retries
        self.transactions: list[LedgerTx] = []

    @classmethod
    def connect(
        cls, data_dir: str | Path, *, org: int = 0, user: str = "User1", chaincode: str = CHAINCODE
    ) -> LedgerTransport:
        contract, channel = LedgerUser(Path(data_dir), org, user).contract(chaincode)
        return cls(contract, channel=channel)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> LedgerTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Transport ---------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any]) -> Any:
        body = json.dumps(params, sort_keys=True)
        raw = self.submit(method, body) if method in SUBMITTED else self.evaluate(method, body)
        return json.loads(raw) if raw else {}

    # --- raw chaincode calls ------------------------------------------------------------

    def evaluate(self, function: str, *args: str) -> bytes:
        try:
            return self.contract.evaluate_transaction(function, *args)
        except GatewayError as exc:
            raise tcf_error(exc) or exc from None

    def submit(self, function: str, *args: str) -> bytes:
        """Endorse, order and wait for a VALID commit; re-endorse after an MVCC conflict.

        The commit status comes from one peer; another endorser may be a block behind, so
        a "not found" refusal is retried for up to ``LAGGING_PEER_WAIT`` seconds (a loaded
        machine can hold a peer back for more than a block) before it is believed."""
        lagging_deadline = time.monotonic() + LAGGING_PEER_WAIT
        attempt = 0
        while True:
            try:
                submitted = self.contract.submit_async(function, *args)
                status = submitted.get_status()
            except GatewayError as exc:
                refusal = tcf_error(exc)
                lagging = refusal is not None and "not found" in refusal.message
                if lagging and time.monotonic() < lagging_deadline:
                    time.sleep(0.1)
                    continue
                raise refusal or exc from None
            if status.successful:
                self.transactions.append(LedgerTx(function, status.transaction_id, status.block_number))
                return submitted.result
            if status.code not in _RETRIED or attempt >= self.retries:
                raise CommitError(status.transaction_id, status.code, status.block_number)
            attempt += 1
            time.sleep(0.05 * attempt)

    # --- proxy-mode extras ---------------------------------------------------------------

    def complete(self, work_order_id: str, outcome: dict[str, Any], receipt: dict[str, Any] | None) -> bytes:
        """WorkOrderComplete: only the worker's registered ledger identity may call it."""
        return self.submit(
            "WorkOrderComplete",
            work_order_id,
            json.dumps(outcome, sort_keys=True),
            json.dumps(receipt, sort_keys=True) if receipt else "",
        )

    def publish_dataset(self, dataset: Any) -> dict[str, Any]:
        """Put a hospital's ``EncryptedDataset`` (ciphertext and hashes) on the ledger."""
        fields = ("owner", "data", "iv", "data_hash", "ciphertext_hash")
        doc = {k: getattr(dataset, k) for k in fields} if not isinstance(dataset, dict) else dataset
        return json.loads(self.submit("DatasetPublish", json.dumps(doc, sort_keys=True)))

    def dataset(self, owner: str) -> dict[str, Any]:
        return json.loads(self.evaluate("DatasetGet", owner))

    def identity(self) -> dict[str, str]:
        """This client's ledger identity as the contract records it (MSP id, certificate SHA-256)."""
        ident = self.contract.network.gateway.identity
        return {"mspid": ident.mspid, "certSha256": hashlib.sha256(ident.credentials).hexdigest()}

    def worker_ledger_identity(self, worker_id: str) -> dict[str, Any]:
        return json.loads(self.evaluate("WorkerLedgerIdentity", worker_id))


__all__ = ["CHAINCODE", "LedgerTransport", "LedgerTx", "LedgerUser", "tcf_error"]
