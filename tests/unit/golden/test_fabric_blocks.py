"""Golden data: blocks written by a real Hyperledger Fabric v2.5.16 network.

heddle must parse every one, recompute its data hash and the header hash chain, verify the
orderer, creator and endorsement signatures, derive the channel config from the genesis
block, and mark every transaction VALID.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.channelconfig import parse_config_block
from heddle.crypto import SignatureError
from heddle.peer.validator import BlockValidator, BlockVerificationError, verify_block
from heddle.protocol import (
    block_data_hash,
    block_header_hash,
    block_signatures,
    compute_txid,
    endorsement_message,
    parse_endorser_transaction,
    parse_envelope,
)

BLOCKS = Path(__file__).parents[2] / "fixtures" / "fabric-2.5.16" / "blocks"
NUMBERS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 40]
# the fixture certificates were issued in 2026; check them at a time inside their validity
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)


def load(n: int) -> common_pb2.Block:
    return common_pb2.Block.FromString((BLOCKS / f"block_{n:04d}.pb").read_bytes())


@pytest.fixture(scope="module")
def blocks() -> dict[int, common_pb2.Block]:
    return {n: load(n) for n in NUMBERS}


@pytest.fixture(scope="module")
def config(blocks):
    return parse_config_block(blocks[0])


def test_every_block_parses_and_its_data_hash_matches(blocks):
    for n, block in blocks.items():
        assert block.header.number == n
        assert block_data_hash(block.data) == block.header.data_hash
        for raw in block.data.data:
            parse_envelope(raw)


def test_header_hash_chain_links_blocks_0_to_8(blocks):
    for n in range(1, 9):
        assert blocks[n].header.previous_hash == block_header_hash(blocks[n - 1].header)


def test_channel_config_derived_from_genesis(config):
    assert config.channel_id == "mychannel"
    assert sorted(config.msp_manager.mspids) == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    assert config.orderer.consensus_type == "etcdraft"
    assert config.orderer.batch_size.max_message_count == 500
    assert config.orderer.batch_size.preferred_max_bytes == 2 * 1024 * 1024
    assert config.orderer.batch_timeout_s == 2.0
    assert [c.endpoint for c in config.orderer.consenters] == ["127.0.0.1:7050"]
    assert set(config.application.orgs) == {"Org1MSP", "Org2MSP"}


def test_orderer_signatures_verify_and_satisfy_block_validation(blocks, config):
    for n in NUMBERS[1:]:
        sigs = block_signatures(blocks[n])
        assert sigs, f"block {n} carries orderer signatures"
        for message, creator, signature in sigs:
            ident = config.msp_manager.deserialize_identity(creator, now=NOW)
            assert ident.mspid == "OrdererMSP" and "orderer" in ident.roles
            ident.verify(message, signature)
        verify_block(blocks[n], None, config)


def test_creator_and_endorsement_signatures_verify(blocks, config):
    endorsements = 0
    for n in NUMBERS[1:]:
        for raw in blocks[n].data.data:
            p = parse_envelope(raw)
            assert p.tx_id == compute_txid(p.signature_header.nonce, p.creator)
            creator = config.msp_manager.deserialize_identity(p.creator, now=NOW)
            creator.verify(p.envelope.payload, p.envelope.signature)
            for action in parse_endorser_transaction(p.payload.data):
                for e in action.endorsements:
                    endorser = config.msp_manager.deserialize_identity(e.endorser, now=NOW)
                    assert "peer" in endorser.roles
                    endorser.verify(
                        endorsement_message(action.proposal_response_payload, e.endorser), e.signature
                    )
                    endorsements += 1
    assert endorsements >= 2 * 91  # CreateAsset transactions are endorsed by both peers


def test_validator_marks_every_transaction_valid(blocks, config):
    validator = BlockValidator("mychannel")
    prev = block_header_hash(blocks[0].header)
    total = 0
    for n in NUMBERS[1:]:
        verify_block(blocks[n], prev if n <= 8 else None, config)
        results = validator.validate(blocks[n], config, lambda txids: set())
        assert [transaction_pb2.TxValidationCode.Name(r.code) for r in results] == ["VALID"] * len(results)
        assert bytes(r.code for r in results) == blocks[n].metadata.metadata[2]  # Fabric's own filter
        total += len(results)
        prev = block_header_hash(blocks[n].header)
    assert total == 3 + 1 + 40 + 50


def test_tampered_fabric_block_is_refused(blocks, config):
    block = common_pb2.Block()
    block.CopyFrom(blocks[5])
    env = common_pb2.Envelope.FromString(block.data.data[0])
    env.signature = env.signature[:-1] + bytes([env.signature[-1] ^ 1])
    block.data.data[0] = env.SerializeToString()
    with pytest.raises(BlockVerificationError, match="data hash"):
        verify_block(block, None, config)


def test_flipped_endorsement_signature_is_caught(blocks, config):
    p = parse_envelope(blocks[4].data.data[0])
    action = parse_endorser_transaction(p.payload.data)[0]
    e = action.endorsements[0]
    endorser = config.msp_manager.deserialize_identity(e.endorser, now=NOW)
    with pytest.raises(SignatureError):
        endorser.verify(endorsement_message(action.proposal_response_payload + b"x", e.endorser), e.signature)
