"""The peer's commit path on real ledgers: block verification, every validation code, and
recovery of world state after a crash between block append and state commit.

Transactions that must commit are endorsed by Org1's peer under a chaincode definition for
"demo" with policy OR('Org1MSP.peer'); unendorsed ones fail the endorsement policy."""

from __future__ import annotations

import pytest
from endorsed_tx import Definitions, endorse, signature_policy, writes
from fabric_client import Identity, write_transaction
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2 as tx

from heddle.ledger.kvledger import KvLedger
from heddle.msp import load_signing_identity
from heddle.peer.channel import PeerChannel
from heddle.peer.validator import BlockVerificationError
from heddle.protocol import block_header_hash, new_block, sign_block

DEMO = Definitions(demo=signature_policy("OR('Org1MSP.peer')"))


@pytest.fixture
def channel(material, tmp_path):
    ch = PeerChannel.create(tmp_path / "ledgers", material.genesis_copy(), pool=None, definitions=DEMO)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def user(material):
    return Identity.from_msp_dir(material.msp(1), "Org1MSP")


@pytest.fixture(scope="module")
def peer1(material):
    return load_signing_identity(material.peer_msp(1), "Org1MSP")


def endorsed(user, peer, values):
    return endorse(user, [peer], "demo", writes("demo", values))


def make_block(channel, signer, envelopes, number=None, prev=None):
    block = new_block(
        channel.height if number is None else number,
        channel._prev_hash if prev is None else prev,
        [e if isinstance(e, bytes) else e.SerializeToString() for e in envelopes],
    )
    sign_block(block, signer.serialized, signer.sign, last_config=0)
    return block


def codes(results):
    return [tx.TxValidationCode.Name(r.code) for r in results]


def test_valid_block_commits_writes_and_history(channel, material, user, peer1):
    orderer = material.orderer_identity()
    e1 = endorsed(user, peer1, {"a": b"1", "b": b"2"})
    e2 = endorsed(user, peer1, {"a": b"3"})
    results = channel.commit(make_block(channel, orderer, [e1, e2]))
    assert codes(results) == ["VALID", "VALID"]
    assert channel.height == 2
    assert channel.ledger.state.get("demo", "a").value == b"3"
    assert tuple(channel.ledger.state.get("demo", "a").version) == (1, 1)
    assert [tuple(h) for h in channel.ledger.state.history("demo", "a")] == [(1, 1), (1, 0)]
    assert channel.block(1).metadata.metadata[2] == bytes([0, 0])


def test_block_with_tampered_orderer_signature_is_refused(channel, material, user):
    e, _ = write_transaction(user, "mychannel", {"x": b"1"})
    block = make_block(channel, material.orderer_identity(), [e])
    md = common_pb2.Metadata.FromString(block.metadata.metadata[0])
    sig = bytearray(md.signatures[0].signature)
    sig[-3] ^= 0xFF
    md.signatures[0].signature = bytes(sig)
    block.metadata.metadata[0] = md.SerializeToString()
    with pytest.raises(BlockVerificationError, match="BlockValidation"):
        channel.commit(block)
    assert channel.height == 1 and channel.ledger.state.get("demo", "x") is None


def test_block_signed_by_a_non_orderer_is_refused(channel, material, user):
    from heddle.msp import load_signing_identity

    peer = load_signing_identity(material.peer_msp(1), "Org1MSP")
    e, _ = write_transaction(user, "mychannel", {"x": b"1"})
    with pytest.raises(BlockVerificationError, match="BlockValidation"):
        channel.commit(make_block(channel, peer, [e]))
    assert channel.height == 1


def test_unsigned_block_is_refused(channel, user):
    e, _ = write_transaction(user, "mychannel", {"x": b"1"})
    block = new_block(1, channel._prev_hash, [e.SerializeToString()])
    with pytest.raises(BlockVerificationError, match="no orderer signature"):
        channel.commit(block)


def test_broken_hash_chain_is_refused(channel, material, user):
    e, _ = write_transaction(user, "mychannel", {"x": b"1"})
    block = make_block(channel, material.orderer_identity(), [e], prev=b"\x00" * 32)
    with pytest.raises(BlockVerificationError, match="previous hash"):
        channel.commit(block)
    block = make_block(channel, material.orderer_identity(), [e], number=5)
    with pytest.raises(BlockVerificationError, match="expected block 1"):
        channel.commit(block)
    assert channel.height == 1


def test_data_tampered_after_signing_is_refused(channel, material, user):
    e, _ = write_transaction(user, "mychannel", {"x": b"1"})
    block = make_block(channel, material.orderer_identity(), [e])
    e2, _ = write_transaction(user, "mychannel", {"x": b"evil"})
    block.data.data[0] = e2.SerializeToString()
    with pytest.raises(BlockVerificationError, match="data hash"):
        channel.commit(block)


def test_every_transaction_check_has_its_code(channel, material, user, peer1):
    from heddle.protocol import parse_envelope

    orderer = material.orderer_identity()
    good = endorsed(user, peer1, {"g": b"1"})
    good_txid = parse_envelope(good.SerializeToString()).channel_header.tx_id
    unendorsed, _ = write_transaction(user, "mychannel", {"n": b"1"})
    bad_txid, _ = write_transaction(user, "mychannel", {"t": b"1"}, txid="00" * 32)
    bad_sig, _ = write_transaction(user, "mychannel", {"s": b"1"})
    bad_sig.signature = user.sign(b"different bytes")
    unknown_msp, _ = write_transaction(Identity.self_signed("EvilMSP"), "mychannel", {"u": b"1"})
    other_ca, _ = write_transaction(Identity.self_signed("Org1MSP"), "mychannel", {"c": b"1"})
    wrong_channel, _ = write_transaction(user, "otherchannel", {"w": b"1"})
    block = make_block(
        channel,
        orderer,
        [
            good,
            good,
            bad_txid,
            bad_sig,
            unknown_msp,
            other_ca,
            wrong_channel,
            b"\x0a\xff\xff",
            b"",
            unendorsed,
        ],
    )
    results = channel.commit(block)
    assert codes(results) == [
        "VALID",
        "DUPLICATE_TXID",
        "BAD_PROPOSAL_TXID",
        "BAD_CREATOR_SIGNATURE",
        "BAD_CREATOR_SIGNATURE",
        "BAD_CREATOR_SIGNATURE",
        "TARGET_CHAIN_NOT_FOUND",
        "BAD_PAYLOAD",
        "NIL_ENVELOPE",
        "ENDORSEMENT_POLICY_FAILURE",
    ]
    state = channel.ledger.state
    assert state.get("demo", "g").value == b"1"
    for key in ("t", "s", "u", "c", "w", "n"):
        assert state.get("demo", key) is None, key
    # the same txid in a later block is a duplicate of the committed one
    results = channel.commit(make_block(channel, orderer, [good]))
    assert codes(results) == ["DUPLICATE_TXID"]
    assert channel.ledger.blocks.tx_location(good_txid) == (1, 0)


def test_state_is_replayed_after_crash_between_block_and_state_commit(material, user, peer1, tmp_path):
    ch = PeerChannel.create(tmp_path / "ledgers", material.genesis_copy(), pool=None, definitions=DEMO)
    orderer = material.orderer_identity()
    e = endorsed(user, peer1, {"k": b"v1"})
    block = make_block(ch, orderer, [e])
    block.metadata.metadata[2] = bytes([tx.VALID])
    ch.ledger.blocks.append(block)  # the block is durable, the state batch never ran
    ch.close()
    ledger = KvLedger(tmp_path / "ledgers" / "mychannel")
    try:
        assert ledger.height == 2
        assert ledger.state.get("demo", "k").value == b"v1"
        assert ledger.state.savepoint().block_num == 1
    finally:
        ledger.close()


def test_redelivered_block_is_ignored(channel, material, user, peer1):
    e = endorsed(user, peer1, {"k": b"1"})
    block = make_block(channel, material.orderer_identity(), [e])
    first = channel.commit(block)
    again = common_pb2.Block()
    again.CopyFrom(block)
    assert channel.commit(again) == [] and len(first) == 1
    assert channel.height == 2
    assert block_header_hash(channel.block(1).header) == block_header_hash(block.header)
