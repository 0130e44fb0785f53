"""Issue acceptance: 1,000+ signed envelopes from a foreign client through a real orderer
and two real peers over TLS; the peers' height, transaction filters and world state must
agree with what was sent."""

from __future__ import annotations

import threading
import time

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

from heddle.ledger import open_state_db
from heddle.protocol import block_header_hash

pytestmark = pytest.mark.integration
N = 1000


def collect_filtered(net, peer: int, identity: Identity, until_txids: set[str], timeout=120.0):
    """Follow DeliverFiltered from block 0 until every txid in ``until_txids`` is seen."""
    codes: dict[str, int] = {}
    blocks = 0
    with secure_channel(net.peer_address(peer), net.peer_tls_ca(peer)) as ch:
        call = peer_deliver_stub(ch, filtered=True)(
            iter([seek_envelope(identity, net.spec.channel, 0)]), timeout=timeout
        )
        try:
            for resp in call:
                assert resp.WhichOneof("Type") == "filtered_block", resp
                blocks += 1
                for ft in resp.filtered_block.filtered_transactions:
                    codes.setdefault(ft.txid, ft.tx_validation_code)
                if until_txids <= codes.keys():
                    break
        finally:
            call.cancel()
    return codes, blocks


def chain_info(net, peer: int, identity: Identity) -> ledger_pb2.BlockchainInfo:
    with secure_channel(net.peer_address(peer), net.peer_tls_ca(peer)) as ch:
        resp = endorser_stub(ch)(
            qscc_proposal(identity, net.spec.channel, "GetChainInfo", net.spec.channel.encode()), timeout=30
        )
    assert resp.response.status == 200, resp.response.message
    return ledger_pb2.BlockchainInfo.FromString(resp.response.payload)


def test_thousand_envelopes_commit_and_peers_agree(network, endorser):
    net = network
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    user2 = Identity.from_msp_dir(net.user_msp(1), "Org2MSP")
    sent: dict[str, tuple[str, bytes]] = {}
    envelopes = []
    for i in range(N):
        key, value = f"key{i:05d}", f"value-{i}".encode()
        env, txid = write_transaction(
            user if i % 2 else user2, net.spec.channel, {key: value}, endorsers=(endorser,)
        )
        envelopes.append(env)
        sent[txid] = (key, value)
    # a later write to the same key wins in world state
    env, txid = write_transaction(user, net.spec.channel, {"key00007": b"overwritten"}, endorsers=(endorser,))
    envelopes.append(env)
    sent[txid] = ("key00007", b"overwritten")

    # two concurrent Broadcast streams, pipelined
    responses: list = []
    lock = threading.Lock()

    def send(part):
        with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
            out = list(broadcast_stub(ch)(iter(part), timeout=120))
        with lock:
            responses.extend(out)

    threads = [
        threading.Thread(target=send, args=(envelopes[: N // 2],)),
        threading.Thread(target=send, args=(envelopes[N // 2 :],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(responses) == len(envelopes)
    bad = [r for r in responses if r.status != common_pb2.SUCCESS]
    assert not bad, bad[:3]

    for peer in (0, 1):
        codes, blocks = collect_filtered(net, peer, user, set(sent))
        assert all(codes[t] == transaction_pb2.VALID for t in sent), "every sent transaction is VALID"
        assert blocks >= 2  # genesis + at least one block (MaxMessageCount 100 -> ~11 blocks)

    # both peers: same height and same chain of block hashes
    infos = [chain_info(net, p, user) for p in (0, 1)]
    assert infos[0].height == infos[1].height
    assert infos[0].currentBlockHash == infos[1].currentBlockHash
    assert infos[0].height >= 1 + N // net.spec.max_message_count

    # world state on each peer matches what was sent (the last write to a key wins)
    expected = {key: value for key, value in sent.values()}
    for peer in (0, 1):
        state = open_state_db(
            net.data / "production" / net.peer_name(peer) / "ledgers" / net.spec.channel / "state"
        )
        try:
            got = state.get_many("demo", list(expected))
            assert {k: v.value for k, v in got.items() if v is not None} == expected
        finally:
            state.close()


def test_peer_blocks_match_orderer_blocks(network, endorser):
    """Every block the peer committed is byte-identical (header, data) to what the orderer wrote."""
    net = network
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    env, txid = write_transaction(user, net.spec.channel, {"chain-check": b"1"}, endorsers=(endorser,))
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        assert next(broadcast_stub(ch)(iter([env]), timeout=30)).status == common_pb2.SUCCESS
    codes, _ = collect_filtered(net, 0, user, {txid})
    assert codes[txid] == transaction_pb2.VALID
    height = chain_info(net, 0, user).height
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        peer_blocks = [
            r.block
            for r in peer_deliver_stub(ch)(
                iter([seek_envelope(user, net.spec.channel, 0, height - 1)]), timeout=30
            )
            if r.HasField("block")
        ]
    from fabric_client import orderer_deliver_stub

    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        ord_blocks = [
            r.block
            for r in orderer_deliver_stub(ch)(
                iter([seek_envelope(user, net.spec.channel, 0, height - 1)]), timeout=30
            )
            if r.HasField("block")
        ]
    assert len(peer_blocks) == len(ord_blocks) == height
    prev = b""
    for pb, ob in zip(peer_blocks, ord_blocks, strict=True):
        assert pb.header == ob.header and pb.data == ob.data
        assert pb.header.previous_hash == prev
        prev = block_header_hash(pb.header)
        assert len(pb.metadata.metadata[2]) == len(pb.data.data)  # TRANSACTIONS_FILTER written


def test_duplicate_and_bad_txid_are_marked_invalid(network, endorser):
    net = network
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    env, txid = write_transaction(user, net.spec.channel, {"dup": b"first"}, endorsers=(endorser,))
    bad_env, bad_txid = write_transaction(
        user, net.spec.channel, {"badtxid": b"x"}, txid="ab" * 32, endorsers=(endorser,)
    )
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        statuses = [r.status for r in broadcast_stub(ch)(iter([env, env, bad_env]), timeout=30)]
    assert statuses == [common_pb2.SUCCESS] * 3  # the orderer does not dedupe; the peers do
    time.sleep(0.1)
    # the same txid again, in a later block
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        assert next(broadcast_stub(ch)(iter([env]), timeout=30)).status == common_pb2.SUCCESS
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        call = peer_deliver_stub(ch, filtered=True)(
            iter([seek_envelope(user, net.spec.channel, 0)]), timeout=60
        )
        seen: list[tuple[str, int]] = []
        try:
            for resp in call:
                for ft in resp.filtered_block.filtered_transactions:
                    if ft.txid in (txid, bad_txid):
                        seen.append((ft.txid, ft.tx_validation_code))
                if len([s for s in seen if s[0] == txid]) >= 3 and any(s[0] == bad_txid for s in seen):
                    break
        finally:
            call.cancel()
    dup_codes = [c for t, c in seen if t == txid]
    assert dup_codes == [
        transaction_pb2.VALID,
        transaction_pb2.DUPLICATE_TXID,
        transaction_pb2.DUPLICATE_TXID,
    ]
    assert (bad_txid, transaction_pb2.BAD_PROPOSAL_TXID) in seen
    state = open_state_db(net.data / "production" / net.peer_name(0) / "ledgers" / net.spec.channel / "state")
    try:
        assert state.get("demo", "dup").value == b"first"
        assert state.get("demo", "badtxid") is None  # invalid transactions change nothing
    finally:
        state.close()


def test_transactions_that_do_not_satisfy_the_endorsement_policy_change_nothing(network, endorser):
    net = network
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    unendorsed, t1 = write_transaction(user, net.spec.channel, {"policy-1": b"x"})
    by_client, t2 = write_transaction(user, net.spec.channel, {"policy-2": b"x"}, endorsers=(user,))
    forged, t3 = write_transaction(user, net.spec.channel, {"policy-3": b"x"}, endorsers=(endorser,))
    tx = transaction_pb2.Transaction()
    payload = common_pb2.Payload.FromString(forged.payload)
    tx.ParseFromString(payload.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    cap.action.endorsements[0].signature = user.sign(b"not the response payload")
    tx.actions[0].payload = cap.SerializeToString()
    payload.data = tx.SerializeToString()
    forged.payload = payload.SerializeToString()
    forged.signature = user.sign(forged.payload)
    good, t4 = write_transaction(user, net.spec.channel, {"policy-4": b"x"}, endorsers=(endorser,))
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        statuses = [
            r.status for r in broadcast_stub(ch)(iter([unendorsed, by_client, forged, good]), timeout=30)
        ]
    assert statuses == [common_pb2.SUCCESS] * 4
    codes, _ = collect_filtered(net, 0, user, {t1, t2, t3, t4})
    assert codes[t1] == transaction_pb2.ENDORSEMENT_POLICY_FAILURE
    assert codes[t2] == transaction_pb2.ENDORSEMENT_POLICY_FAILURE
    assert codes[t3] == transaction_pb2.ENDORSEMENT_POLICY_FAILURE
    assert codes[t4] == transaction_pb2.VALID
    state = open_state_db(net.data / "production" / net.peer_name(0) / "ledgers" / net.spec.channel / "state")
    try:
        assert [state.get("demo", f"policy-{i}") is None for i in (1, 2, 3, 4)] == [True, True, True, False]
    finally:
        state.close()
