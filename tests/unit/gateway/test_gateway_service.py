"""gateway.Gateway driven by heddle.client over loopback gRPC, with scripted endorsers and orderer."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import policy_pb2, transaction_pb2
from gateway_fakes import FakeNetwork

from heddle.client import (
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
    connect,
    identity_from_msp_dir,
    signer_from_msp_dir,
)
from heddle.policy import parse_signature_policy


@pytest.fixture(scope="module")
def net(material):
    network = FakeNetwork(material)
    network.start()
    yield network
    network.stop()


@pytest.fixture
def fresh(net):
    """Reset the scripted behaviour each test may change."""
    net.gateway.policy = None
    net.gateway.org2_down = False
    net.gateway._plans.clear()  # plans are cached per block height; tests change policies
    net.orderer.status = common_pb2.SUCCESS
    net.orderer.commit_code = transaction_pb2.VALID
    return net


@pytest.fixture(scope="module")
def grpc_channel(net):
    channel = grpc.insecure_channel(f"127.0.0.1:{net.gateway_port}")
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def gateway(material, grpc_channel):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    return connect(identity, signer_from_msp_dir(material.msp(1)), grpc_channel)


@pytest.fixture
def contract(gateway, fresh):
    return gateway.get_network("mychannel").get_contract("basic")


def _endorsers_of(envelope) -> list[str]:
    from heddle.protocol import parse_endorser_transaction, parse_envelope

    actions = parse_endorser_transaction(parse_envelope(envelope).payload.data)
    from fabric_protos.msp import identities_pb2

    return sorted(
        identities_pb2.SerializedIdentity.FromString(e.endorser).mspid for e in actions[0].endorsements
    )


def test_evaluate_returns_the_chaincode_result_from_the_local_org(contract, net):
    before = (net.org1.calls, net.org2.calls)
    assert contract.evaluate_transaction("Echo", "a", "b") == b"a,b"
    assert (net.org1.calls, net.org2.calls) == (before[0] + 1, before[1])


def test_evaluate_on_a_target_org(contract, net):
    before = net.org2.calls
    assert contract.evaluate_transaction("Diverge", target_organizations=["Org2MSP"]) == b"Org2MSP"
    assert net.org2.calls == before + 1


def test_evaluate_chaincode_error_is_aborted_with_details(contract, net):
    with pytest.raises(GatewayError) as info:
        contract.evaluate_transaction("Fail", "asset70")
    err = info.value
    assert err.code == grpc.StatusCode.ABORTED
    assert [(d.msp_id, d.address) for d in err.details] == [("Org1MSP", net.gateway.local_address)]
    assert "the asset asset70 does not exist" in err.details[0].message


def test_submit_under_majority_collects_both_orgs_and_commits(contract, net):
    sent = len(net.orderer.received)
    result = contract.submit_transaction("Echo", "x")
    assert result == b"x"
    envelope = common_pb2.Envelope.FromString(net.orderer.received[sent])
    assert _endorsers_of(envelope) == ["Org1MSP", "Org2MSP"]
    assert envelope.signature  # the client signed the prepared transaction


def test_signature_policy_or_endorses_on_the_local_org_only(contract, net):
    env = parse_signature_policy("OR('Org1MSP.peer', 'Org2MSP.peer')")
    net.gateway.policy = policy_pb2.ApplicationPolicy(signature_policy=env).SerializeToString()
    net.gateway._plans.clear()
    sent = len(net.orderer.received)
    contract.submit_transaction("Echo", "y")
    assert _endorsers_of(common_pb2.Envelope.FromString(net.orderer.received[sent])) == ["Org1MSP"]


def test_or_policy_falls_back_to_another_org_when_one_is_down(contract, net):
    env = parse_signature_policy("OR('Org2MSP.peer', 'Org1MSP.peer')")
    net.gateway.policy = policy_pb2.ApplicationPolicy(signature_policy=env).SerializeToString()
    net.gateway._plans.clear()
    net.gateway.org2_down = True
    assert contract.submit_transaction("Echo", "z") == b"z"


def test_and_policy_with_an_org_down_is_aborted_naming_the_unreachable_peer(contract, net):
    net.gateway.org2_down = True
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("Echo", "q")
    err = info.value
    assert err.code == grpc.StatusCode.ABORTED  # Org1 endorsed; Org2 could not be reached
    assert [d.msp_id for d in err.details] == ["Org2MSP"]
    assert err.transaction_id


def test_no_reachable_endorser_is_unavailable(contract, net):
    net.gateway.org2_down = True
    with pytest.raises(GatewayError) as info:
        contract.evaluate_transaction("Echo", target_organizations=["Org2MSP"])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert [d.msp_id for d in info.value.details] == ["Org2MSP"]


def test_endorsing_organizations_override_the_plan(contract, net):
    sent = len(net.orderer.received)
    contract.submit_transaction("Echo", "o", endorsing_organizations=["Org2MSP"])
    assert _endorsers_of(common_pb2.Envelope.FromString(net.orderer.received[sent])) == ["Org2MSP"]


def test_chaincode_error_on_endorse_is_aborted_with_the_message(contract):
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("Fail", "asset70")
    err = info.value
    assert err.code == grpc.StatusCode.ABORTED
    assert err.message == "failed to endorse transaction, see attached details for more info"
    assert any("chaincode response 500, the asset asset70 does not exist" in d.message for d in err.details)


def test_endorsers_that_fail_without_answering_are_aborted_with_details(contract):
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("Crash")
    assert info.value.code == grpc.StatusCode.ABORTED
    assert sorted(d.msp_id for d in info.value.details) == ["Org1MSP", "Org2MSP"]
    assert all("crashed" in d.message or "UNKNOWN" in d.message for d in info.value.details)


def test_differing_results_are_aborted(contract):
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("Diverge")
    assert info.value.code == grpc.StatusCode.ABORTED
    assert "do not match" in info.value.message


def test_a_remote_peer_a_block_behind_is_asked_again_until_it_agrees(contract, net):
    net.org2.lagged = 0
    before = net.org2.calls
    assert contract.submit_transaction("Lag", "2") == b"2"  # MAJORITY: both orgs must endorse
    assert net.org2.calls == before + 3  # failed twice (behind), then agreed


def test_unknown_chaincode_and_channel_are_not_found(gateway, fresh):
    with pytest.raises(EndorseError) as info:
        gateway.get_network("mychannel").get_contract("nope").submit_transaction("Echo")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(GatewayError) as info:
        gateway.get_network("otherchannel").get_contract("basic").evaluate_transaction("Echo")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_malformed_requests_are_invalid_argument(grpc_channel, fresh):
    endorse = grpc_channel.unary_unary(
        "/gateway.Gateway/Endorse",
        gateway_pb2.EndorseRequest.SerializeToString,
        gateway_pb2.EndorseResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        endorse(gateway_pb2.EndorseRequest(channel_id="mychannel"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = gateway_pb2.EndorseRequest(channel_id="mychannel")
    bad.proposed_transaction.proposal_bytes = b"\xff\xff"
    with pytest.raises(grpc.RpcError) as info:
        endorse(bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    submit = grpc_channel.unary_unary(
        "/gateway.Gateway/Submit",
        gateway_pb2.SubmitRequest.SerializeToString,
        gateway_pb2.SubmitResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        submit(gateway_pb2.SubmitRequest(channel_id="mychannel"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_orderer_rejection_is_a_submit_error(contract, net):
    net.orderer.status = common_pb2.BAD_REQUEST
    with pytest.raises(SubmitError) as info:
        contract.submit_transaction("Echo", "r")
    assert info.value.code == grpc.StatusCode.ABORTED
    assert "BAD_REQUEST" in info.value.message


def test_invalid_commit_raises_commit_error_with_the_code_name(contract, net):
    net.orderer.commit_code = transaction_pb2.MVCC_READ_CONFLICT
    with pytest.raises(CommitError) as info:
        contract.submit_transaction("Echo", "m")
    assert info.value.code_name == "MVCC_READ_CONFLICT"


def test_submit_async_then_status(contract):
    submitted = contract.submit_async("Echo", "s")
    assert submitted.result == b"s"
    status = submitted.get_status()
    assert status.successful and status.code_name == "VALID" and status.block_number > 0
    # asking again after the commit answers from the ledger
    assert submitted.get_status() == status


def test_commit_status_with_a_foreign_identity_is_denied(material, grpc_channel, contract):
    from heddle.client import Identity

    submitted = contract.submit_async("Echo", "f")
    intruder = Identity("Org1MSP", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    gw = connect(intruder, signer_from_msp_dir(material.msp(1)), grpc_channel)
    commit = gw.new_signed_commit(
        gateway_pb2.CommitStatusRequest(
            transaction_id=submitted.transaction_id, channel_id="mychannel", identity=intruder.serialized()
        ).SerializeToString(),
        b"0",
    )
    with pytest.raises(CommitStatusError) as info:
        commit.get_status()
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_commit_status_deadline(gateway, fresh):
    contract = gateway.get_network("mychannel").get_contract("basic")
    proposal = contract.new_proposal("Echo", "never")
    commit = proposal.endorse()  # endorsed but never submitted: no commit comes
    request = gateway_pb2.CommitStatusRequest(
        transaction_id=commit.transaction_id, channel_id="mychannel", identity=gateway.identity.serialized()
    ).SerializeToString()
    pending = gateway.new_signed_commit(request, gateway.sign(request))
    with pytest.raises(CommitStatusError) as info:
        pending.get_status(timeout=0.3)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_chaincode_events_from_a_block_resume_after_a_transaction(gateway, contract, net):
    start = net.channel.height
    first = contract.submit_async("Echo", "e1")
    second = contract.submit_async("Echo", "e2")
    first.get_status()
    second.get_status()
    network = gateway.get_network("mychannel")
    with network.get_chaincode_events("basic", start_block=start) as events:
        it = iter(events)
        got = [next(it), next(it)]
    assert [e.payload for e in got] == [b"e1", b"e2"]
    assert got[0].transaction_id == first.transaction_id and got[0].event_name == "Echo"
    block = got[0].block_number
    with network.get_chaincode_events(
        "basic", start_block=block, after_transaction_id=first.transaction_id
    ) as events:
        assert next(iter(events)).transaction_id == second.transaction_id


def test_chaincode_events_stream_new_commits(gateway, contract, net):
    network = gateway.get_network("mychannel")
    received = []
    events = network.get_chaincode_events("basic")

    def read():
        for ev in events:
            received.append(ev)
            return

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)  # let the stream start at the next commit
    contract.submit_transaction("Echo", "live")
    reader.join(10)
    events.close()
    assert [e.payload for e in received] == [b"live"]


def test_concurrent_requests_are_served_concurrently(material, grpc_channel, net, fresh):
    net.org1.delay = 0.2
    try:
        identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
        contract = (
            connect(identity, signer_from_msp_dir(material.msp(1)), grpc_channel)
            .get_network("mychannel")
            .get_contract("basic")
        )
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda i: contract.evaluate_transaction("Echo", str(i)), range(20)))
        elapsed = time.monotonic() - t0
    finally:
        net.org1.delay = 0.0
    assert results == [str(i).encode() for i in range(20)]
    assert elapsed < 2.0  # 20 x 0.2s serially would be 4s


def test_offline_signing_flow(material, grpc_channel, fresh):
    identity = identity_from_msp_dir(material.msp(1), "Org1MSP")
    sign = signer_from_msp_dir(material.msp(1))
    offline = connect(identity, None, grpc_channel)
    contract = offline.get_network("mychannel").get_contract("basic")
    unsigned = contract.new_proposal("Echo", "off", endorsing_organizations=["Org1MSP"])
    with pytest.raises(GatewayError):
        unsigned.endorse()
    proposal = offline.new_signed_proposal(unsigned.bytes(), sign(unsigned.digest()))
    assert proposal.endorsing_organizations == ("Org1MSP",)
    unsigned_tx = proposal.endorse()
    assert unsigned_tx.result == b"off"
    transaction = offline.new_signed_transaction(unsigned_tx.bytes(), sign(unsigned_tx.digest()))
    unsigned_commit = transaction.submit()
    commit = offline.new_signed_commit(unsigned_commit.bytes(), sign(unsigned_commit.digest()))
    assert commit.get_status().successful


def test_chaincode_events_with_a_bad_signature_are_denied(grpc_channel, gateway):
    stub = grpc_channel.unary_stream(
        "/gateway.Gateway/ChaincodeEvents",
        gateway_pb2.SignedChaincodeEventsRequest.SerializeToString,
        gateway_pb2.ChaincodeEventsResponse.FromString,
    )
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id="mychannel", chaincode_id="basic", identity=gateway.identity.serialized()
    ).SerializeToString()
    signed = gateway_pb2.SignedChaincodeEventsRequest(
        request=request, signature=gateway.sign(b"something else")
    )
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stub(signed, timeout=5)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "signature is invalid" in info.value.details()
    missing = gateway_pb2.ChaincodeEventsRequest(
        channel_id="mychannel", identity=gateway.identity.serialized()
    )
    raw = missing.SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        next(
            iter(
                stub(
                    gateway_pb2.SignedChaincodeEventsRequest(request=raw, signature=gateway.sign(raw)),
                    timeout=5,
                )
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_transient_data_is_not_sent_to_other_orgs_unless_named(contract, net):
    with pytest.raises(EndorseError) as info:
        contract.submit_transaction("Echo", "t", transient={"secret": b"s"})
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    before = net.org2.calls
    result = contract.submit_transaction(
        "Echo", "t", transient={"secret": b"s"}, endorsing_organizations=["Org1MSP", "Org2MSP"]
    )
    assert result == b"t" and net.org2.calls == before + 1
    env = parse_signature_policy("OR('Org1MSP.peer', 'Org2MSP.peer')")
    net.gateway.policy = policy_pb2.ApplicationPolicy(signature_policy=env).SerializeToString()
    net.gateway._plans.clear()
    before = net.org2.calls
    assert contract.submit_transaction("Echo", "u", transient={"secret": b"s"}) == b"u"
    assert net.org2.calls == before
