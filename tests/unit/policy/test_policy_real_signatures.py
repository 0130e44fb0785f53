"""Policies over real ECDSA signatures: heddle's own keys, heddle.msp identities, and the
identities and signatures inside real Fabric 2.5.16 blocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_config_pb2, msp_principal_pb2
from fabric_protos.peer import transaction_pb2
from policy_fakes import channel_group

from heddle.crypto import EcdsaSigner, SignatureError, generate_key, verify
from heddle.policy import (
    PolicyError,
    PolicyManager,
    SignedData,
    evaluate_signature_policy,
    parse_signature_policy,
)

BLOCKS = Path(__file__).parents[2] / "fixtures" / "fabric-2.5.16" / "blocks"
# The fixture network's certificates were issued 2026-11-22, valid for ten years.
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)


# --- heddle.crypto keys behind a minimal deserializer (no PKI) ---------------------------


class KeyIdentity:
    def __init__(self, mspid, role, public_key, serialized):
        self.mspid, self.role, self.public_key, self.serialized = (
            mspid,
            role,
            public_key,
            serialized,
        )

    def verify(self, message, signature):
        verify(self.public_key, signature, message)

    def satisfies_principal(self, principal):
        r = msp_principal_pb2.MSPRole.FromString(principal.principal)
        return r.msp_identifier == self.mspid and r.role in (
            msp_principal_pb2.MSPRole.MEMBER,
            self.role,
        )


class KeyDeserializer:
    """Serialized identity = b"MSPID|ROLE|" + SubjectPublicKeyInfo DER."""

    def deserialize_identity(self, serialized):
        mspid, role, der = serialized.split(b"|", 2)
        try:
            key = serialization.load_der_public_key(der)
        except ValueError as exc:
            raise ValueError(f"bad key: {exc}") from exc
        return KeyIdentity(mspid.decode(), int(role), key, serialized)


def key_identity(mspid: str, role: int):
    signer = EcdsaSigner(generate_key())
    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return signer, f"{mspid}|{role}|".encode() + der


def test_real_ecdsa_signatures_satisfy_and_forgeries_do_not():
    peer = msp_principal_pb2.MSPRole.PEER
    s1, id1 = key_identity("Org1MSP", peer)
    s2, id2 = key_identity("Org2MSP", peer)
    msg = b"proposal response payload"
    env = parse_signature_policy("AND('Org1MSP.peer', 'Org2MSP.peer')")
    good = [SignedData(msg, id1, s1.sign(msg)), SignedData(msg, id2, s2.sign(msg))]
    evaluate_signature_policy(env, good, KeyDeserializer())

    # Org2's signature over different bytes, and Org1's key pretending to be Org2.
    wrong_msg = SignedData(msg, id2, s2.sign(b"something else"))
    stolen = SignedData(msg, id2, s1.sign(msg))
    for bad in (wrong_msg, stolen):
        with pytest.raises(PolicyError, match="unmet: 'Org2MSP.peer'"):
            evaluate_signature_policy(env, [good[0], bad], KeyDeserializer())
    with pytest.raises(SignatureError):  # the evaluator relies on verify refusing it
        verify(s2.public_key, stolen.signature, msg)


# --- heddle.msp: cryptogen material, MspManager, signing identities ---------------------

import heddle.msp as msp  # noqa: E402


class AtTime:
    """MspManager pinned to a clock, as the validator would pin the block's time."""

    def __init__(self, manager, now):
        self.manager, self.now = manager, now

    def deserialize_identity(self, serialized):
        return self.manager.deserialize_identity(serialized, self.now)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    from heddle.msp.cryptogen import generate_default_network

    material = generate_default_network(tmp_path_factory.mktemp("crypto"), peer_orgs=2)
    manager = msp.MspManager(msp.Msp.from_dir(o.msp_dir, o.mspid) for o in material.orgs)
    return material, manager


def _sign(identity, data: bytes) -> SignedData:
    return SignedData(data, identity.serialized, identity.sign(data))


def test_policy_tree_over_real_msp_identities(network):
    material, manager = network
    pm = PolicyManager.from_channel_group(channel_group(), manager)

    def load(org, who):
        o = material.org(org)
        node = (
            o.admin if who == "Admin" else (o.user(who) if who.startswith("User") else o.node(who))
        )
        return msp.load_signing_identity(node.msp_dir, o.mspid)

    data = b"config update"
    admin1, admin2 = load("Org1", "Admin"), load("Org2", "Admin")
    orderer_admin = load("Orderer", "Admin")
    peer1, user1 = load("Org1", "peer0"), load("Org1", "User1")

    pm.evaluate("/Channel/Application/Org1MSP/Admins", [_sign(admin1, data)])
    with pytest.raises(PolicyError, match="OR\\('Org1MSP.admin'\\) not satisfied"):
        pm.evaluate("/Channel/Application/Org1MSP/Admins", [_sign(user1, data)])
    pm.evaluate("/Channel/Application/Writers", [_sign(user1, data)])
    with pytest.raises(PolicyError):
        pm.evaluate("/Channel/Application/Writers", [_sign(peer1, data)])  # peers are not writers
    pm.evaluate("/Channel/Application/Readers", [_sign(peer1, data)])

    with pytest.raises(PolicyError, match="/Channel/Admins"):
        pm.evaluate("/Channel/Admins", [_sign(admin1, data), _sign(orderer_admin, data)])
    sigs = [_sign(admin1, data), _sign(admin2, data), _sign(orderer_admin, data)]
    pm.evaluate("/Channel/Admins", sigs)
    # The same admin signing twice is still one admin.
    with pytest.raises(PolicyError):
        pm.evaluate("/Channel/Application/Admins", [sigs[0], _sign(admin1, data)])


# --- Real Fabric blocks: their identities, signatures and channel policies --------------



def _block(n: int) -> common_pb2.Block:
    return common_pb2.Block.FromString((BLOCKS / f"block_{n:04d}.pb").read_bytes())


@pytest.fixture(scope="module")
def fabric_channel():
    env = common_pb2.Envelope.FromString(_block(0).data.data[0])
    config = configtx_pb2.ConfigEnvelope.FromString(common_pb2.Payload.FromString(env.payload).data)
    cg = config.config.channel_group
    msps = []
    for section in ("Orderer", "Application"):
        for org in cg.groups[section].groups.values():
            msps.append(
                msp.Msp.from_config(msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value))
            )
    return PolicyManager.from_channel_group(cg, AtTime(msp.MspManager(msps), NOW))


def _endorsements(envelope_bytes: bytes) -> list[SignedData]:
    env = common_pb2.Envelope.FromString(envelope_bytes)
    tx = transaction_pb2.Transaction.FromString(common_pb2.Payload.FromString(env.payload).data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    prp = cap.action.proposal_response_payload
    return [SignedData(prp + e.endorser, e.endorser, e.signature) for e in cap.action.endorsements]


def test_fabric_endorsements_satisfy_majority_endorsement(fabric_channel):
    endorsements = _endorsements(_block(5).data.data[0])
    assert len(endorsements) == 2
    fabric_channel.evaluate("/Channel/Application/Endorsement", endorsements)
    with pytest.raises(PolicyError, match="MAJORITY Endorsement"):
        fabric_channel.evaluate("/Channel/Application/Endorsement", endorsements[:1])
    tampered = SignedData(
        endorsements[1].data + b"x", endorsements[1].identity, endorsements[1].signature
    )
    with pytest.raises(PolicyError, match="invalid"):
        fabric_channel.evaluate("/Channel/Application/Endorsement", [endorsements[0], tampered])


def test_fabric_client_signature_satisfies_writers(fabric_channel):
    env = common_pb2.Envelope.FromString(_block(4).data.data[0])
    shdr_bytes = common_pb2.Payload.FromString(env.payload).header.signature_header
    creator = common_pb2.SignatureHeader.FromString(shdr_bytes).creator
    sd = SignedData(env.payload, creator, env.signature)
    fabric_channel.evaluate("/Channel/Application/Writers", [sd])
    fabric_channel.evaluate("Application/Readers", [sd])
    with pytest.raises(PolicyError):
        fabric_channel.evaluate("/Channel/Application/Admins", [sd])


def test_fabric_orderer_block_signature_satisfies_block_validation(fabric_channel):
    from heddle.protocol import block_signature_message

    block = _block(6)
    md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
    signed_data = []
    for sig in md.signatures:
        creator = common_pb2.SignatureHeader.FromString(sig.signature_header).creator
        message = block_signature_message(block, md.value, sig.signature_header)
        signed_data.append(SignedData(message, creator, sig.signature))
    assert signed_data
    fabric_channel.evaluate("/Channel/Orderer/BlockValidation", signed_data)
    with pytest.raises(PolicyError):
        fabric_channel.evaluate("/Channel/Application/Writers", signed_data)
