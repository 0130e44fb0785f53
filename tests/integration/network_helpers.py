"""Helpers for integration tests: networks on free ports, and chaincode definitions for the
commit-path tests. (Fixtures are in conftest.py; import these from here, not from conftest.)"""

from __future__ import annotations

from fabric_client import Identity, broadcast_stub, peer_deliver_stub, secure_channel, seek_envelope
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.common.ports import free_port
from heddle.network.local import LocalNetwork, NetworkSpec


def make_network(tmp_path_factory, name: str, **spec_kw) -> LocalNetwork:
    spec = NetworkSpec(
        orderer_port=free_port(),
        orderer_admin_port=free_port(),
        peer_ports=[free_port(), free_port()],
        **spec_kw,
    )
    return LocalNetwork(tmp_path_factory.mktemp(name), spec)


DEMO_POLICY = "OR('Org1MSP.peer','Org2MSP.peer')"


def peer_identity(net: LocalNetwork, i: int) -> Identity:
    """peer0.orgN's signing identity (the tests sign endorsements with the peer's own key)."""
    msp = net.org_dir(i) / "peers" / net.peer_name(i) / "msp"
    return Identity.from_msp_dir(msp, f"Org{i + 1}MSP")


def define_chaincode(net: LocalNetwork, name: str, signature_policy: str) -> None:
    """Commit a chaincode definition for ``name`` through a _lifecycle transaction endorsed by
    both orgs' peers (the channel's LifecycleEndorsement is MAJORITY). Setup only: the
    definition lets the commit-path tests write under ``name`` with real endorsements."""
    from fabric_protos.peer import policy_pb2

    from heddle.chaincode.lifecycle.definitions import ChaincodeDefinition, write_definition
    from heddle.ledger.simulator import TxSimulator
    from heddle.policy import parse_signature_policy
    from heddle.protocol import (
        build_response,
        create_proposal,
        create_signed_transaction,
        parse_signed_proposal,
        sign_proposal,
    )

    policy = policy_pb2.ApplicationPolicy(signature_policy=parse_signature_policy(signature_policy))
    sim = TxSimulator(None, "setup")
    write_definition(
        sim, ChaincodeDefinition(name, 1, "1.0", validation_parameter=policy.SerializeToString())
    )
    results = sim.results().SerializeToString()
    admin = Identity.from_msp_dir(net.user_msp(0, "Admin"), "Org1MSP")
    proposal, txid = create_proposal(
        admin.serialized, net.spec.channel, "_lifecycle", [b"CommitChaincodeDefinition"]
    )
    parsed = parse_signed_proposal(sign_proposal(proposal, admin.sign))
    responses = [
        build_response(parsed, 200, results=results, endorser=p.serialized, sign=p.sign)
        for p in (peer_identity(net, 0), peer_identity(net, 1))
    ]
    envelope = create_signed_transaction(parsed, responses, admin.sign)
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        resp = next(broadcast_stub(ch)(iter([envelope]), timeout=30))
    assert resp.status == common_pb2.SUCCESS, resp
    for peer in range(len(net.spec.peer_ports)):
        with secure_channel(net.peer_address(peer), net.peer_tls_ca(peer)) as ch:
            call = peer_deliver_stub(ch, filtered=True)(
                iter([seek_envelope(admin, net.spec.channel, 0)]), timeout=30
            )
            try:
                for r in call:
                    codes = {ft.txid: ft.tx_validation_code for ft in r.filtered_block.filtered_transactions}
                    if txid in codes:
                        assert codes[txid] == transaction_pb2.VALID, codes[txid]
                        break
            finally:
                call.cancel()
