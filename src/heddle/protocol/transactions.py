"""Decoding endorser transactions down to their read/write sets.

Layers: Transaction -> TransactionAction -> ChaincodeActionPayload -> ChaincodeEndorsedAction
-> ProposalResponsePayload -> ChaincodeAction -> TxReadWriteSet -> KVRWSet per namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2

from heddle.protocol.envelopes import ProtocolError, decode


@dataclass(frozen=True)
class NsRwSet:
    namespace: str
    kv: kv_rwset_pb2.KVRWSet


@dataclass(frozen=True)
class EndorsedAction:
    """One action of an endorser transaction, decoded; raw bytes kept for signature checks."""

    proposal_response_payload: bytes
    endorsements: list[proposal_response_pb2.Endorsement]
    chaincode_action: proposal_pb2.ChaincodeAction
    rwsets: list[NsRwSet]
    chaincode_proposal_payload: bytes

    @property
    def chaincode_name(self) -> str:
        return self.chaincode_action.chaincode_id.name


def parse_rwset(results: bytes) -> list[NsRwSet]:
    txrw = decode(rwset_pb2.TxReadWriteSet(), results, "TxReadWriteSet")
    out = []
    for ns in txrw.ns_rwset:
        kv = decode(kv_rwset_pb2.KVRWSet(), ns.rwset, f"KVRWSet of namespace {ns.namespace!r}")
        out.append(NsRwSet(ns.namespace, kv))
    return out


def parse_endorser_transaction(payload_data: bytes) -> list[EndorsedAction]:
    """Decode a Payload.data of type ENDORSER_TRANSACTION; ProtocolError names the bad layer."""
    tx = decode(transaction_pb2.Transaction(), payload_data, "Transaction")
    if not tx.actions:
        raise ProtocolError("transaction has no actions")
    actions = []
    for act in tx.actions:
        cap = decode(transaction_pb2.ChaincodeActionPayload(), act.payload, "ChaincodeActionPayload")
        if not cap.HasField("action"):
            raise ProtocolError("ChaincodeActionPayload has no endorsed action")
        prp = decode(
            proposal_response_pb2.ProposalResponsePayload(),
            cap.action.proposal_response_payload,
            "ProposalResponsePayload",
        )
        cca = decode(proposal_pb2.ChaincodeAction(), prp.extension, "ChaincodeAction")
        actions.append(
            EndorsedAction(
                proposal_response_payload=cap.action.proposal_response_payload,
                endorsements=list(cap.action.endorsements),
                chaincode_action=cca,
                rwsets=parse_rwset(cca.results) if cca.results else [],
                chaincode_proposal_payload=cap.chaincode_proposal_payload,
            )
        )
    return actions
