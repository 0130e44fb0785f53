"""QSCC ledger queries and the peer CLI's channel queries against a running network."""

from __future__ import annotations

import pytest
from fabric_client import (
    Identity,
    broadcast_stub,
    endorser_stub,
    peer_deliver_stub,
    qscc_proposal,
    secure_channel,
    seek_envelope,
    write_transaction,
)
from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.peer import transaction_pb2

from heddle.cli.main import main as heddle
from heddle.protocol import block_header_hash

pytestmark = pytest.mark.integration


def qscc(net, user, function, *args):
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        return endorser_stub(ch)(
            qscc_proposal(user, net.spec.channel, function, net.spec.channel.encode(), *args)
        )


def test_qscc_queries_find_a_committed_transaction(network, endorser):
    net = network
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    env, txid = write_transaction(user, net.spec.channel, {"qscc-key": b"v"}, endorsers=(endorser,))
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        assert next(broadcast_stub(ch)(iter([env]), timeout=30)).status == common_pb2.SUCCESS
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        call = peer_deliver_stub(ch, filtered=True)(
            iter([seek_envelope(user, net.spec.channel, 0)]), timeout=60
        )
        number = None
        for resp in call:
            if any(ft.txid == txid for ft in resp.filtered_block.filtered_transactions):
                number = resp.filtered_block.number
                break
        call.cancel()
    assert number is not None

    by_txid = qscc(net, user, "GetBlockByTxID", txid.encode())
    assert by_txid.response.status == 200
    block = common_pb2.Block.FromString(by_txid.response.payload)
    assert block.header.number == number

    by_hash = qscc(net, user, "GetBlockByHash", block_header_hash(block.header))
    assert by_hash.response.status == 200
    assert common_pb2.Block.FromString(by_hash.response.payload).header == block.header

    by_number = qscc(net, user, "GetBlockByNumber", str(number).encode())
    assert common_pb2.Block.FromString(by_number.response.payload).header == block.header

    tx = qscc(net, user, "GetTransactionByID", txid.encode())
    assert tx.response.status == 200
    processed = transaction_pb2.ProcessedTransaction.FromString(tx.response.payload)
    assert processed.validationCode == transaction_pb2.VALID
    assert processed.transactionEnvelope.SerializeToString() == env.SerializeToString()

    info = ledger_pb2.BlockchainInfo.FromString(qscc(net, user, "GetChainInfo").response.payload)
    assert info.height >= number + 1

    missing = qscc(net, user, "GetTransactionByID", b"f" * 64)
    assert missing.response.status == 404 and "no such transaction" in missing.response.message
    assert qscc(net, user, "GetBlockByHash", b"\x00" * 32).response.status == 404


def test_peer_cli_lists_channels_and_shows_chain_info(network, capsys, monkeypatch):
    net = network
    monkeypatch.setenv("CORE_PEER_ADDRESS", net.peer_address(1))
    monkeypatch.setenv("CORE_PEER_LOCALMSPID", "Org2MSP")
    monkeypatch.setenv("CORE_PEER_MSPCONFIGPATH", str(net.user_msp(1, "Admin")))
    monkeypatch.setenv("CORE_PEER_TLS_ROOTCERT_FILE", str(net.peer_tls_ca(1)))
    assert heddle(["peer", "channel", "list"]) == 0
    assert net.spec.channel in capsys.readouterr().out.splitlines()
    assert heddle(["peer", "channel", "getinfo", "-c", net.spec.channel]) == 0
    assert '"height":' in capsys.readouterr().out
    # a user (not an admin) may not join channels
    monkeypatch.setenv("CORE_PEER_MSPCONFIGPATH", str(net.user_msp(1)))
    assert heddle(["peer", "channel", "join", "-b", str(net.genesis_path)]) == 1
    assert "not an admin" in capsys.readouterr().err
