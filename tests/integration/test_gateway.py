"""The Gateway on a real network through heddle.client.

The first tests use the system chaincode qscc on the shared conftest network; the asset-flow
tests deploy the example contract `basic` through _lifecycle onto a network of their own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from fabric_protos.common import common_pb2
from network_helpers import make_network

from heddle.client import (
    EndorseError,
    Gateway,
    GatewayError,
    connect,
    identity_from_msp_dir,
    signer_from_msp_dir,
    tls_channel,
)

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asset_transfer_basic"


def start_basic_network(tmp_path_factory, name: str):
    """Start a network and deploy `basic` from examples/asset_transfer_basic/chaincode."""
    net = make_network(tmp_path_factory, name, batch_timeout="250ms", max_message_count=50)
    net.generate()
    try:
        net.start()
        net.join()
        net.deploy_chaincode("basic", str(EXAMPLE / "chaincode"))
    except Exception:
        net.stop()
        raise
    return net


def gateway_for(net, org: int = 0, user: str = "User1") -> tuple[Gateway, object]:
    """(gateway, grpc channel) for a user of org ``org`` at that org's peer."""
    channel = tls_channel(
        net.peer_address(org), net.peer_tls_ca(org), server_name_override=net.peer_name(org)
    )
    msp = net.user_msp(org, user)
    return connect(identity_from_msp_dir(msp, f"Org{org + 1}MSP"), signer_from_msp_dir(msp), channel), channel


# ----- the Gateway alone (the conftest network: no user chaincode) -----


@pytest.fixture(scope="module")
def plain_gateway(network):
    gw, channel = gateway_for(network, 0)
    yield gw
    channel.close()


def test_evaluate_system_chaincode(plain_gateway):
    from fabric_protos.common import ledger_pb2

    qscc = plain_gateway.get_network("mychannel").get_contract("qscc")
    info = ledger_pb2.BlockchainInfo.FromString(qscc.evaluate_transaction("GetChainInfo", "mychannel"))
    assert info.height >= 1


def test_endorse_submit_and_commit_status_with_offline_signing(network, plain_gateway):
    msp = network.user_msp(0)
    sign = signer_from_msp_dir(msp)
    offline = connect(identity_from_msp_dir(msp, "Org1MSP"), None, plain_gateway.grpc_channel)
    unsigned = offline.get_network("mychannel").get_contract("qscc").new_proposal("GetChainInfo", "mychannel")
    proposal = offline.new_signed_proposal(unsigned.bytes(), sign(unsigned.digest()))
    unsigned_tx = proposal.endorse()
    transaction = offline.new_signed_transaction(unsigned_tx.bytes(), sign(unsigned_tx.digest()))
    unsigned_commit = transaction.submit()
    commit = offline.new_signed_commit(unsigned_commit.bytes(), sign(unsigned_commit.digest()))
    status = commit.get_status(timeout=30)
    # a qscc transaction is ordered and committed (as invalid: system chaincodes write nothing)
    assert status.transaction_id == proposal.transaction_id and status.block_number >= 1


def test_unknown_chaincode_and_channel_are_not_found(plain_gateway):
    with pytest.raises(GatewayError) as info:
        plain_gateway.get_network("mychannel").get_contract("nosuchcc").evaluate_transaction("X")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(GatewayError) as info:
        plain_gateway.get_network("mychannel").get_contract("nosuchcc").submit_transaction("X")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(GatewayError) as info:
        plain_gateway.get_network("nosuchchannel").get_contract("basic").evaluate_transaction("X")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_block_events_from_genesis(plain_gateway):
    network = plain_gateway.get_network("mychannel")
    with network.get_block_events(start_block=0) as blocks:
        first = next(iter(blocks))
    assert isinstance(first, common_pb2.Block) and first.header.number == 0
    with network.get_block_events(start_block=0, filtered=True) as blocks:
        assert next(iter(blocks)).number == 0


def test_commit_status_of_an_unknown_transaction_times_out(plain_gateway):
    from fabric_protos.gateway import gateway_pb2

    request = gateway_pb2.CommitStatusRequest(
        transaction_id="00" * 32, channel_id="mychannel", identity=plain_gateway.identity.serialized()
    ).SerializeToString()
    commit = plain_gateway.new_signed_commit(request, plain_gateway.sign(request))
    with pytest.raises(GatewayError) as info:
        commit.get_status(timeout=0.5)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


# ----- the asset flow (chaincode `basic` deployed) -----


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_basic_network(tmp_path_factory, "gateway")
    yield network
    network.stop()


@pytest.fixture(scope="module")
def gateway(net):
    gw, channel = gateway_for(net, 0)
    yield gw
    channel.close()


@pytest.fixture(scope="module")
def contract(gateway):
    return gateway.get_network("mychannel").get_contract("basic")


def test_asset_flow(contract):
    contract.submit_transaction("InitLedger")
    assets = json.loads(contract.evaluate_transaction("GetAllAssets"))
    assert len(assets) >= 1
    asset_id = f"asset{time.time_ns()}"
    contract.submit_transaction("CreateAsset", asset_id, "yellow", "5", "Tom", "1300")
    submitted = contract.submit_async("TransferAsset", asset_id, "Saptha")
    assert submitted.result == b"Tom"
    status = submitted.get_status()
    assert status.successful and status.block_number > 0
    asset = json.loads(contract.evaluate_transaction("ReadAsset", asset_id))
    assert asset["ID"] == asset_id and asset["Owner"] == "Saptha"
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("UpdateAsset", "asset70", "blue", "5", "Tomoko", "300")
    assert info.value.code == grpc.StatusCode.ABORTED
    assert any("asset70 does not exist" in d.message for d in info.value.details)


def test_example_app_runs(net, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("asset_app", EXAMPLE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    argv = ["--data", str(net.data), "--endpoint", net.peer_address(0)]
    assert app.main(argv) == 0
    out = capsys.readouterr().out
    assert "Successfully caught the error" in out and "does not exist" in out


def test_endorsement_collects_both_orgs_under_majority(net, contract):
    from fabric_protos.msp import identities_pb2

    from heddle.protocol import parse_endorser_transaction, parse_envelope

    asset_id = f"asset{time.time_ns()}"
    proposal = contract.new_proposal("CreateAsset", asset_id, "red", "1", "Ann", "10")
    transaction = proposal.endorse()
    actions = parse_endorser_transaction(parse_envelope(transaction.envelope).payload.data)
    mspids = sorted(
        identities_pb2.SerializedIdentity.FromString(e.endorser).mspid for e in actions[0].endorsements
    )
    assert mspids == ["Org1MSP", "Org2MSP"]
    assert transaction.submit().get_status().successful


def test_gateway_of_org2_works_too(net):
    gw, channel = gateway_for(net, 1)
    try:
        contract = gw.get_network("mychannel").get_contract("basic")
        asset_id = f"asset{time.time_ns()}"
        contract.submit_transaction("CreateAsset", asset_id, "green", "2", "Bo", "20")
        assert json.loads(contract.evaluate_transaction("ReadAsset", asset_id))["Owner"] == "Bo"
    finally:
        channel.close()


def test_chaincode_events_stream_is_served(gateway, contract):
    # asset-transfer-basic emits no events; the stream must still open and be closable
    events = gateway.get_network("mychannel").get_chaincode_events("basic", start_block=0)
    contract.submit_transaction("CreateAsset", f"asset{time.time_ns()}", "x", "1", "Y", "1")
    events.close()


def test_concurrent_submits(contract):
    from concurrent.futures import ThreadPoolExecutor

    ids = [f"par{time.time_ns()}-{i}" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        submitted = list(pool.map(lambda a: contract.submit_async("CreateAsset", a, "c", "1", "O", "1"), ids))
        statuses = list(pool.map(lambda s: s.get_status(), submitted))
    assert all(s.successful for s in statuses)
