"""Bad input at the orderer and the peer: each gets a precise status and message, the nodes
keep serving, and nothing that was acknowledged is lost."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from fabric_client import (
    Identity,
    broadcast_stub,
    endorser_stub,
    orderer_deliver_stub,
    peer_deliver_stub,
    qscc_proposal,
    secure_channel,
    seek_envelope,
    write_transaction,
)
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.common.ports import free_port

pytestmark = pytest.mark.integration
S = common_pb2.Status


def broadcast_one(net, envelope, raw=False):
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        return next(broadcast_stub(ch, raw=raw)(iter([envelope]), timeout=60))


def committed_codes(net, identity, txids: set[str]) -> dict[str, int]:
    codes: dict[str, int] = {}
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        call = peer_deliver_stub(ch, filtered=True)(
            iter([seek_envelope(identity, net.spec.channel, 0)]), timeout=60
        )
        try:
            for resp in call:
                for ft in resp.filtered_block.filtered_transactions:
                    codes.setdefault(ft.txid, ft.tx_validation_code)
                if txids <= codes.keys():
                    break
        finally:
            call.cancel()
    return codes


@pytest.fixture(scope="module")
def user(network):
    return Identity.from_msp_dir(network.user_msp(0), "Org1MSP")


def test_broadcast_bad_inputs_get_precise_statuses_and_orderer_keeps_serving(network, user, endorser):
    net = network
    acked, acked_txid = write_transaction(
        user, net.spec.channel, {"before-bad-input": b"kept"}, endorsers=(endorser,)
    )
    assert broadcast_one(net, acked).status == S.SUCCESS

    cases = []
    # malformed protobuf bytes
    cases.append(("malformed", b"\xff\xff\xff\x07garbage", True, S.BAD_REQUEST, "malformed envelope"))
    # an envelope whose payload is not a Payload
    cases.append(
        (
            "bad payload",
            common_pb2.Envelope(payload=b"\x0a\xff", signature=b"x"),
            False,
            S.BAD_REQUEST,
            "malformed payload",
        )
    )
    # an unknown channel
    env, _ = write_transaction(user, "nosuchchannel", {"k": b"v"}, endorsers=(endorser,))
    cases.append(("unknown channel", env, False, S.NOT_FOUND, "nosuchchannel"))
    # unsigned
    env, _ = write_transaction(user, net.spec.channel, {"k": b"v"}, sign=False, endorsers=(endorser,))
    cases.append(("unsigned", env, False, S.FORBIDDEN, "not signed"))
    # wrongly signed: a valid signature over other bytes
    env, _ = write_transaction(user, net.spec.channel, {"k": b"v"}, endorsers=(endorser,))
    env.signature = user.sign(b"something else")
    cases.append(("wrong signature", env, False, S.FORBIDDEN, "Writers"))
    # creator from an unknown MSP
    intruder = Identity.self_signed("EvilMSP")
    env, _ = write_transaction(intruder, net.spec.channel, {"k": b"v"}, endorsers=(endorser,))
    cases.append(("unknown MSP", env, False, S.FORBIDDEN, "EvilMSP"))
    # creator claiming a known MSP with a certificate from another CA
    impostor = Identity.self_signed("Org1MSP")
    env, _ = write_transaction(impostor, net.spec.channel, {"k": b"v"}, endorsers=(endorser,))
    cases.append(("foreign CA", env, False, S.FORBIDDEN, "creator is not valid"))
    # over AbsoluteMaxBytes (10 MB)
    env, _ = write_transaction(
        user, net.spec.channel, {"big": b"v"}, pad=10 * 1024 * 1024 + 1, endorsers=(endorser,)
    )
    cases.append(("oversized", env, False, S.BAD_REQUEST, "exceeds maximum allowed"))
    # a header type that cannot be broadcast
    env = seek_envelope(user, net.spec.channel, 0)
    cases.append(("seek info", env, False, S.BAD_REQUEST, "cannot be broadcast"))

    for name, envelope, raw, status, text in cases:
        resp = broadcast_one(net, envelope, raw=raw)
        assert resp.status == status, (name, resp)
        assert text in resp.info, (name, resp.info)

    # still serving, and both the earlier and a later transaction commit
    after, after_txid = write_transaction(
        user, net.spec.channel, {"after-bad-input": b"ok"}, endorsers=(endorser,)
    )
    assert broadcast_one(net, after).status == S.SUCCESS
    codes = committed_codes(net, user, {acked_txid, after_txid})
    assert codes[acked_txid] == transaction_pb2.VALID
    assert codes[after_txid] == transaction_pb2.VALID


def test_deliver_bad_inputs(network, user):
    net = network
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        stub = orderer_deliver_stub(ch, raw=True)
        resp = list(stub(iter([b"\x01\x02garbage"]), timeout=30))
        assert [r.status for r in resp] == [S.BAD_REQUEST]
        stub = orderer_deliver_stub(ch)
        assert [r.status for r in stub(iter([seek_envelope(user, "nosuchchannel", 0)]), timeout=30)] == [
            S.NOT_FOUND
        ]
        intruder = Identity.self_signed("Org1MSP")
        assert [r.status for r in stub(iter([seek_envelope(intruder, net.spec.channel, 0)]), timeout=30)] == [
            S.FORBIDDEN
        ]
        far = seek_envelope(user, net.spec.channel, 10_000, 10_001, fail_if_not_ready=True)
        assert [r.status for r in stub(iter([far]), timeout=30)] == [S.NOT_FOUND]
        backwards = seek_envelope(user, net.spec.channel, 5, 2)
        assert [r.status for r in stub(iter([backwards]), timeout=30)] == [S.BAD_REQUEST]
        # still serving: block 0 then SUCCESS
        ok = list(stub(iter([seek_envelope(user, net.spec.channel, 0, 0)]), timeout=30))
        assert ok[0].block.header.number == 0 and ok[-1].status == S.SUCCESS


def test_peer_rejects_bad_proposals_and_keeps_serving(network, user):
    net = network
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        endorse = endorser_stub(ch)
        raw = endorser_stub(ch, raw=True)
        r = raw(b"\xff\x00not a proposal", timeout=30)
        assert r.response.status == 400 and "invalid proposal" in r.response.message
        r = endorse(qscc_proposal(user, "nosuchchannel", "GetChainInfo", b"nosuchchannel"), timeout=30)
        assert r.response.status == 404 and "nosuchchannel" in r.response.message
        bad = qscc_proposal(user, net.spec.channel, "GetChainInfo", net.spec.channel.encode())
        bad.signature = user.sign(b"other bytes")
        r = endorse(bad, timeout=30)
        assert r.response.status == 403 and "signature" in r.response.message
        intruder = Identity.self_signed("Org1MSP")
        r = endorse(
            qscc_proposal(intruder, net.spec.channel, "GetChainInfo", net.spec.channel.encode()), timeout=30
        )
        assert r.response.status == 403
        r = endorse(
            qscc_proposal(user, net.spec.channel, "GetBlockByNumber", net.spec.channel.encode(), b"x")
        )
        assert r.response.status == 400 and "not a block number" in r.response.message
        r = endorse(
            qscc_proposal(user, net.spec.channel, "GetBlockByNumber", net.spec.channel.encode(), b"99999")
        )
        assert r.response.status == 404
        r = endorse(qscc_proposal(user, net.spec.channel, "NoSuchFunction", net.spec.channel.encode()))
        assert r.response.status == 400 and "unknown function" in r.response.message
        ok = endorse(
            qscc_proposal(user, net.spec.channel, "GetBlockByNumber", net.spec.channel.encode(), b"0")
        )
        assert ok.response.status == 200
        assert common_pb2.Block.FromString(ok.response.payload).header.number == 0
        assert ok.endorsement.signature  # query responses are signed by the peer


def test_a_second_node_on_a_busy_port_fails_clearly_and_the_first_keeps_serving(
    network, user, endorser, tmp_path
):
    """gRPC servers share a port by default (SO_REUSEPORT): a second node started on a busy
    port would bind it too, and the kernel would split connections between the two."""
    net = network
    peer_doc = yaml.safe_load((net.data / "peers" / net.peer_name(0) / "core.yaml").read_text())
    peer_doc["peer"]["fileSystemPath"] = str(tmp_path / "peer-copy")
    orderer_doc = yaml.safe_load(net.orderer_yaml(0).read_text())
    orderer_doc["FileLedger"]["Location"] = str(tmp_path / "orderer-copy")
    orderer_doc["Admin"]["ListenAddress"] = f"127.0.0.1:{free_port()}"
    admin_doc = yaml.safe_load(net.orderer_yaml(0).read_text())
    admin_doc["FileLedger"]["Location"] = str(tmp_path / "orderer-copy-2")
    admin_doc["General"]["ListenPort"] = free_port()
    for n, (kind, doc, address) in enumerate(
        (
            ("peer", peer_doc, net.peer_address(0)),
            ("orderer", orderer_doc, net.orderer_address),
            ("orderer", admin_doc, f"{net.orderer_admin_address_of(0)} (Admin)"),
        )
    ):
        config = tmp_path / f"{kind}-{n}.yaml"
        config.write_text(yaml.safe_dump(doc))
        proc = subprocess.run(
            [sys.executable, "-m", "heddle.cli.main", kind, "start", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert f"Error: listen tcp {address}: " in proc.stderr
        assert "already in use" in proc.stderr.lower()
        assert "Traceback" not in proc.stderr
    env, txid = write_transaction(user, net.spec.channel, {"after-busy-port": b"kept"}, endorsers=(endorser,))
    assert broadcast_one(net, env).status == S.SUCCESS
    assert committed_codes(net, user, {txid})[txid] == transaction_pb2.VALID
