"""A minimal Fabric client built only on fabric_protos, grpc and cryptography (no heddle code),
so integration tests exercise heddle exactly as a foreign client would."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    events_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Identity:
    def __init__(self, mspid: str, cert_pem: bytes, key):
        self.mspid = mspid
        self.cert_pem = cert_pem
        self.key = key
        self.serialized = identities_pb2.SerializedIdentity(
            mspid=mspid, id_bytes=cert_pem
        ).SerializeToString()

    @classmethod
    def from_msp_dir(cls, msp_dir: Path, mspid: str) -> Identity:
        cert = next((msp_dir / "signcerts").iterdir()).read_bytes()
        key = serialization.load_pem_private_key(next((msp_dir / "keystore").iterdir()).read_bytes(), None)
        return cls(mspid, cert, key)

    @classmethod
    def self_signed(cls, mspid: str) -> Identity:
        """An identity no MSP of the channel knows."""
        import datetime as dt

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "intruder")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        return cls(mspid, cert.public_bytes(serialization.Encoding.PEM), key)

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
        if s > P256_N // 2:
            s = P256_N - s
        return encode_dss_signature(r, s)


def _headers(identity: Identity, channel: str, htype: int, extension: bytes = b"", txid=None, nonce=None):
    nonce = nonce or os.urandom(24)
    txid = txid if txid is not None else hashlib.sha256(nonce + identity.serialized).hexdigest()
    now = time.time()
    chdr = common_pb2.ChannelHeader(
        type=htype,
        channel_id=channel,
        tx_id=txid,
        extension=extension,
        timestamp=timestamp_pb2.Timestamp(seconds=int(now), nanos=int((now % 1) * 1e9)),
    )
    shdr = common_pb2.SignatureHeader(creator=identity.serialized, nonce=nonce)
    return chdr, shdr, txid


def write_transaction(
    identity: Identity,
    channel: str,
    writes: dict[str, bytes],
    namespace="demo",
    txid=None,
    nonce=None,
    sign=True,
    pad: int = 0,
    endorsers: tuple[Identity, ...] | list[Identity] = (),
) -> tuple[common_pb2.Envelope, str]:
    """An ENDORSER_TRANSACTION whose read/write set writes ``writes``.

    Each of ``endorsers`` (peer identities whose keys the test holds) signs the response
    payload exactly as an endorsing peer does: over proposal_response_payload || endorser."""
    chdr, shdr, txid = _headers(identity, channel, common_pb2.ENDORSER_TRANSACTION, txid=txid, nonce=nonce)
    kv = kv_rwset_pb2.KVRWSet(writes=[kv_rwset_pb2.KVWrite(key=k, value=v) for k, v in writes.items()])
    results = rwset_pb2.TxReadWriteSet(
        data_model=rwset_pb2.TxReadWriteSet.KV,
        ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=namespace, rwset=kv.SerializeToString())],
    )
    action = proposal_pb2.ChaincodeAction(
        results=results.SerializeToString(),
        response=proposal_response_pb2.Response(status=200),
        chaincode_id=chaincode_pb2.ChaincodeID(name=namespace),
    )
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=hashlib.sha256(txid.encode()).digest(), extension=action.SerializeToString()
    )
    prp_bytes = prp.SerializeToString()
    endorsements = [
        proposal_response_pb2.Endorsement(endorser=e.serialized, signature=e.sign(prp_bytes + e.serialized))
        for e in endorsers
    ]
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=b"x" * pad,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=prp_bytes, endorsements=endorsements
        ),
    )
    tx = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=shdr.SerializeToString(), payload=cap.SerializeToString()
            )
        ]
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
        ),
        data=tx.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=identity.sign(payload) if sign else b""), txid


def seek_envelope(
    identity: Identity, channel: str, start: int, stop: int | None = None, fail_if_not_ready=False
) -> common_pb2.Envelope:
    chdr, shdr, _ = _headers(identity, channel, common_pb2.DELIVER_SEEK_INFO)
    stop_pos = (
        ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=stop))
        if stop is not None
        else ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=2**64 - 1))
    )
    seek = ab_pb2.SeekInfo(
        start=ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start)),
        stop=stop_pos,
        behavior=ab_pb2.SeekInfo.FAIL_IF_NOT_READY
        if fail_if_not_ready
        else ab_pb2.SeekInfo.BLOCK_UNTIL_READY,
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
        ),
        data=seek.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=identity.sign(payload))


def qscc_proposal(
    identity: Identity, channel: str, function: str, *args: bytes
) -> proposal_pb2.SignedProposal:
    ext = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_pb2.ChaincodeID(name="qscc"))
    chdr, shdr, _ = _headers(
        identity, channel, common_pb2.ENDORSER_TRANSACTION, extension=ext.SerializeToString()
    )
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name="qscc"),
            input=chaincode_pb2.ChaincodeInput(args=[function.encode(), *args]),
        )
    )
    prop = proposal_pb2.Proposal(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
        ).SerializeToString(),
        payload=proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString()).SerializeToString(),
    )
    data = prop.SerializeToString()
    return proposal_pb2.SignedProposal(proposal_bytes=data, signature=identity.sign(data))


def secure_channel(address: str, ca_file: Path) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
    return grpc.secure_channel(
        address,
        creds,
        options=[
            ("grpc.max_send_message_length", 200 * 2**20),
            ("grpc.max_receive_message_length", 200 * 2**20),
        ],
    )


def broadcast_stub(channel: grpc.Channel, raw: bool = False):
    return channel.stream_stream(
        "/orderer.AtomicBroadcast/Broadcast",
        request_serializer=(lambda b: b) if raw else common_pb2.Envelope.SerializeToString,
        response_deserializer=ab_pb2.BroadcastResponse.FromString,
    )


def orderer_deliver_stub(channel: grpc.Channel, raw: bool = False):
    return channel.stream_stream(
        "/orderer.AtomicBroadcast/Deliver",
        request_serializer=(lambda b: b) if raw else common_pb2.Envelope.SerializeToString,
        response_deserializer=ab_pb2.DeliverResponse.FromString,
    )


def peer_deliver_stub(channel: grpc.Channel, filtered: bool = False):
    return channel.stream_stream(
        "/protos.Deliver/DeliverFiltered" if filtered else "/protos.Deliver/Deliver",
        request_serializer=common_pb2.Envelope.SerializeToString,
        response_deserializer=events_pb2.DeliverResponse.FromString,
    )


def endorser_stub(channel: grpc.Channel, raw: bool = False):
    return channel.unary_unary(
        "/protos.Endorser/ProcessProposal",
        request_serializer=(lambda b: b) if raw else proposal_pb2.SignedProposal.SerializeToString,
        response_deserializer=proposal_response_pb2.ProposalResponse.FromString,
    )
