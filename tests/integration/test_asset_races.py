"""Issue-3 acceptance on a real network: MVCC and phantom conflicts between racing
transactions, an endorsement policy one org cannot satisfy alone, a chaincode killed in the
middle of a transaction, and bad proposals for user chaincode."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from fabric_client import Identity, endorser_stub, qscc_proposal, secure_channel
from fabric_protos.common import ledger_pb2
from network_helpers import make_network

from heddle.bench.cpu import children
from heddle.client import (
    EndorseError,
    GatewayError,
    connect,
    identity_from_msp_dir,
    signer_from_msp_dir,
    tls_channel,
)
from heddle.protocol import create_proposal, sign_proposal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "examples" / "asset_transfer_basic" / "chaincode"
SLOW = Path(__file__).resolve().parent / "chaincode" / "slow"
BOTH = "AND('Org1MSP.peer','Org2MSP.peer')"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = make_network(tmp_path_factory, "races", batch_timeout="300ms", max_message_count=50)
    network.generate()
    try:
        network.start()
        network.join()
        network.deploy_chaincode("basic", str(BASIC))
        network.deploy_chaincode("strict", str(BASIC), signature_policy=BOTH)
        network.deploy_chaincode("slow", str(SLOW))
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="module")
def gateway(net):
    msp = net.user_msp(0)
    channel = tls_channel(net.peer_address(0), net.peer_tls_ca(0), server_name_override=net.peer_name(0))
    gw = connect(identity_from_msp_dir(msp, "Org1MSP"), signer_from_msp_dir(msp), channel)
    yield gw
    channel.close()


def contract(gateway, name="basic"):
    return gateway.get_network("mychannel").get_contract(name)


def create(c, asset_id: str) -> None:
    c.submit_transaction("CreateAsset", asset_id, "blue", "5", "Tom", "100")


def test_racing_transfers_one_valid_one_mvcc_conflict(gateway):
    c = contract(gateway)
    create(c, "race1")
    first = c.new_proposal("TransferAsset", "race1", "Alice").endorse()
    second = c.new_proposal("TransferAsset", "race1", "Bob").endorse()  # both read the same version
    statuses = [first.submit().get_status(timeout=60), second.submit().get_status(timeout=60)]
    names = sorted(s.code_name for s in statuses)
    assert names == ["MVCC_READ_CONFLICT", "VALID"]
    owner = json.loads(c.evaluate_transaction("ReadAsset", "race1"))["Owner"]
    winner = "Alice" if statuses[0].code_name == "VALID" else "Bob"
    assert owner == winner


def test_range_query_racing_an_insert_is_a_phantom_read(gateway):
    c = contract(gateway)
    listing = c.new_proposal("GetAllAssets").endorse()  # records the range it read
    create(c, "phantom1")  # commits an insert into that range
    status = listing.submit().get_status(timeout=60)
    assert status.code_name == "PHANTOM_READ_CONFLICT"


def test_one_org_cannot_satisfy_an_and_policy_and_nothing_changes(gateway):
    c = contract(gateway, "strict")
    both = c.new_proposal("CreateAsset", "strict1", "red", "1", "Ann", "1").endorse()
    assert both.submit().get_status(timeout=60).code_name == "VALID"
    alone = c.new_proposal(
        "CreateAsset", "strict2", "red", "1", "Ann", "1", endorsing_organizations=["Org1MSP"]
    ).endorse()
    assert alone.submit().get_status(timeout=60).code_name == "ENDORSEMENT_POLICY_FAILURE"
    assert c.evaluate_transaction("AssetExists", "strict2") == b"false"
    assert c.evaluate_transaction("AssetExists", "strict1") == b"true"


def _chaincode_pid(net, peer: int, name: str) -> int:
    peer_pid = net.procs[net.peer_name(peer)].pid
    for pid in children(peer_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"CHAINCODE_ID={name}_".encode() in env or f"/{name}_" in cmdline:
            return pid
    raise AssertionError(f"no chaincode process for {name} under {net.peer_name(peer)}")


def test_chaincode_killed_during_a_transaction_gives_a_clear_error_and_recovers(net, gateway):
    c = contract(gateway, "slow")
    assert c.evaluate_transaction("Sleep", "0") == b"0"  # launched and warm on peer0.org1
    outcome: dict = {}

    def call():
        try:
            outcome["result"] = c.evaluate_transaction("Sleep", "20")
        except (EndorseError, GatewayError) as exc:
            outcome["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    time.sleep(1.0)
    os.kill(_chaincode_pid(net, 0, "slow"), signal.SIGKILL)
    t.join(timeout=40)
    assert not t.is_alive()
    assert "error" in outcome, outcome
    message = str(outcome["error"]) + " ".join(str(d) for d in getattr(outcome["error"], "details", []))
    assert "slow" in message and ("exited" in message or "connection lost" in message), message
    # the peer keeps serving and the chaincode is restarted for the next transaction
    assert c.evaluate_transaction("Sleep", "0") == b"0"
    assert c.submit_transaction("Sleep", "0") == b"0"


def test_bad_proposals_for_user_chaincode_get_precise_errors_and_commit_nothing(net, gateway):
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        before = ledger_pb2.BlockchainInfo.FromString(
            endorser_stub(ch)(qscc_proposal(user, "mychannel", "GetChainInfo", b"mychannel")).response.payload
        ).height
    from heddle.msp import load_signing_identity

    ident = load_signing_identity(net.user_msp(0), "Org1MSP")

    def process(chaincode: str, args: list[bytes], channel="mychannel", tamper=False):
        prop, _ = create_proposal(ident.serialized, channel, chaincode, args)
        signed = sign_proposal(prop, ident.sign)
        if tamper:
            signed.signature = ident.sign(b"something else")
        with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
            return endorser_stub(ch)(signed, timeout=30).response

    r = process("nosuchcc", [b"Anything"])
    assert r.status == 500 and "nosuchcc" in r.message and "defined" in r.message
    r = process("basic", [b"ReadAsset", b"asset1"], channel="nochannel")
    assert r.status == 404 and "nochannel" in r.message
    r = process("basic", [b"ReadAsset", b"asset1"], tamper=True)
    assert r.status == 403 and "signature" in r.message
    r = process("basic", [b"CreateAsset", b"big", b"x" * (5 * 1024 * 1024), b"1", b"o", b"1"])
    assert r.status == 413 and "maximum" in r.message
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        raw = endorser_stub(ch, raw=True)(b"\x0a\x03abc\x12", timeout=30)
    assert raw.response.status == 400 and "invalid proposal" in raw.response.message
    # through the Gateway: an unknown chaincode and a chaincode error are precise too
    with pytest.raises((EndorseError, GatewayError)) as exc:
        contract(gateway, "nosuchcc").submit_transaction("Anything")
    assert "nosuchcc" in str(exc.value) + str(getattr(exc.value, "details", ""))
    with pytest.raises(EndorseError) as exc:
        contract(gateway).submit_transaction("ReadAsset", "no-such-asset")
    assert "the asset no-such-asset does not exist" in str(exc.value) + str(exc.value.details)
    with secure_channel(net.peer_address(0), net.peer_tls_ca(0)) as ch:
        after = ledger_pb2.BlockchainInfo.FromString(
            endorser_stub(ch)(qscc_proposal(user, "mychannel", "GetChainInfo", b"mychannel")).response.payload
        ).height
    assert after == before  # nothing was committed


def test_grpc_status_codes_from_the_gateway(gateway):
    with pytest.raises(GatewayError) as exc:
        gateway.get_network("nochannel").get_contract("basic").evaluate_transaction("ReadAsset", "a")
    assert exc.value.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
