"""heddle.client without a server: proposals, signatures, offline signing bytes, error details."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import proposal_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from heddle.client import (
    ErrorDetail,
    GatewayError,
    connect,
    identity_from_msp_dir,
    sha256,
    signer_from_key_pem,
    signer_from_msp_dir,
)
from heddle.client.errors import error_details
from heddle.crypto.ecdsa import is_low_s
from heddle.msp import Msp
from heddle.peer.gateway.errors import GatewayError as ServerError
from heddle.peer.gateway.errors import NodeFailure
from heddle.protocol import compute_txid, parse_signed_proposal


@pytest.fixture
def gateway(material):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    return connect(identity, signer_from_msp_dir(material.msp(1)), grpc.insecure_channel("127.0.0.1:1"))


def test_identity_serializes_as_fabric_creator(material):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    ser = identities_pb2.SerializedIdentity.FromString(identity.serialized())
    assert ser.mspid == "Org1MSP" and ser.id_bytes.startswith(b"-----BEGIN CERTIFICATE-----")


def test_signer_signs_the_digest_with_low_s(material):
    sign = signer_from_msp_dir(material.msp(1))
    identity = Msp.from_dir(material.msp(1), "Org1MSP").deserialize_identity(
        identity_from_msp_dir(material.msp(1), "Org1MSP").serialized()
    )
    for i in range(20):
        msg = b"message %d" % i
        sig = sign(sha256(msg))
        assert is_low_s(sig)
        identity.verify(msg, sig)  # an ordinary ECDSA-SHA256 signature over the message


def test_signer_rejects_non_ec_keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="EC"):
        signer_from_key_pem(pem)


def test_proposal_carries_function_args_transient_and_a_valid_txid(gateway):
    contract = gateway.get_network("mychannel").get_contract("basic", "SmartContract")
    proposal = contract.new_proposal("CreateAsset", "asset1", b"\x00raw", transient={"secret": b"s"})
    parsed = parse_signed_proposal(
        proposal_pb2.SignedProposal(proposal_bytes=proposal.proposal_bytes(), signature=proposal.signature)
    )
    assert parsed.channel_id == "mychannel" and parsed.chaincode_name == "basic"
    assert parsed.args == [b"SmartContract:CreateAsset", b"asset1", b"\x00raw"]
    assert dict(parsed.payload.TransientMap) == {"secret": b"s"}
    assert (
        parsed.tx_id == proposal.transaction_id == compute_txid(parsed.signature_header.nonce, parsed.creator)
    )
    assert parsed.creator == gateway.identity.serialized()


def test_proposal_signature_verifies_over_the_proposal_bytes(gateway, material):
    proposal = gateway.get_network("mychannel").get_contract("basic").new_proposal("ReadAsset", "a")
    identity = Msp.from_dir(material.msp(1), "Org1MSP").deserialize_identity(gateway.identity.serialized())
    identity.verify(proposal.proposal_bytes(), proposal.signature)
    assert proposal.digest() == sha256(proposal.proposal_bytes())


def test_offline_proposal_round_trips_through_bytes(material):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    offline = connect(identity, None, grpc.insecure_channel("127.0.0.1:1"))
    unsigned = (
        offline.get_network("mychannel")
        .get_contract("basic")
        .new_proposal("TransferAsset", "a", "Bob", endorsing_organizations=["Org1MSP", "Org2MSP"])
    )
    assert unsigned.signature == b""
    proposed = gateway_pb2.ProposedTransaction.FromString(unsigned.bytes())
    assert proposed.transaction_id == unsigned.transaction_id
    assert list(proposed.endorsing_organizations) == ["Org1MSP", "Org2MSP"]
    signature = signer_from_msp_dir(material.msp(1))(unsigned.digest())
    signed = offline.new_signed_proposal(unsigned.bytes(), signature)
    assert signed.proposal_bytes() == unsigned.proposal_bytes()
    assert signed.transaction_id == unsigned.transaction_id and signed.channel_id == "mychannel"
    assert signed.endorsing_organizations == ("Org1MSP", "Org2MSP")
    assert signed.signature == signature


def test_custom_hash_is_used_for_digests(material):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    gw = connect(identity, None, grpc.insecure_channel("127.0.0.1:1"), hash=lambda b: b"H" + b[:3])
    proposal = gw.get_network("c").get_contract("cc").new_proposal("f")
    assert proposal.digest() == b"H" + proposal.proposal_bytes()[:3]


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailers):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


def test_server_error_details_reach_the_client():
    server = ServerError(
        grpc.StatusCode.ABORTED,
        "failed to endorse transaction, see attached details for more info",
        [NodeFailure("peer0.org1.example.com:7051", "Org1MSP", "chaincode response 500, no such asset")],
    )
    status = status_pb2.Status.FromString(server.trailing_metadata()[0][1])
    assert status.code == grpc.StatusCode.ABORTED.value[0]
    rpc = _FakeRpcError(grpc.StatusCode.ABORTED, server.message, server.trailing_metadata())
    err = GatewayError.from_rpc(rpc)
    assert err.code == grpc.StatusCode.ABORTED
    assert err.details == [
        ErrorDetail("peer0.org1.example.com:7051", "Org1MSP", "chaincode response 500, no such asset")
    ]
    assert "no such asset" in str(err)


def test_error_details_ignore_foreign_and_missing_trailers():
    other = any_pb2.Any()
    other.Pack(gateway_pb2.SubmitResponse())
    status = status_pb2.Status(code=10, message="x", details=[other])
    assert (
        error_details(
            _FakeRpcError(
                grpc.StatusCode.ABORTED, "x", (("grpc-status-details-bin", status.SerializeToString()),)
            )
        )
        == []
    )
    assert error_details(_FakeRpcError(grpc.StatusCode.ABORTED, "x", None)) == []
    assert (
        error_details(_FakeRpcError(grpc.StatusCode.ABORTED, "x", (("grpc-status-details-bin", b"\xff"),)))
        == []
    )


def test_ec_key_pem_signer_matches_public_key():
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sig = signer_from_key_pem(pem)(sha256(b"hello"))
    key.public_key().verify(sig, b"hello", ec.ECDSA(hashes.SHA256()))
