"""Endorsement planning: policies -> the org layouts that satisfy them."""

from __future__ import annotations

import pytest
from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.peer import policy_pb2

from heddle.channelconfig import parse_config_block
from heddle.peer.gateway.plan import (
    PlanError,
    application_policy_layouts,
    config_policy_layouts,
    feasible_layouts,
    minimal_layouts,
    signature_policy_layouts,
)
from heddle.policy import parse_implicit_meta_policy, parse_signature_policy


def layouts(text: str) -> list[dict[str, int]]:
    return signature_policy_layouts(parse_signature_policy(text))


def test_or_gives_one_layout_per_org():
    assert layouts("OR('Org1MSP.peer', 'Org2MSP.peer')") == [{"Org1MSP": 1}, {"Org2MSP": 1}]


def test_and_needs_every_org():
    assert layouts("AND('Org1MSP.peer', 'Org2MSP.peer')") == [{"Org1MSP": 1, "Org2MSP": 1}]


def test_out_of_gives_every_combination():
    got = layouts("OutOf(2, 'A.peer', 'B.peer', 'C.peer')")
    assert got == [{"A": 1, "B": 1}, {"A": 1, "C": 1}, {"B": 1, "C": 1}]


def test_one_org_twice_needs_two_of_its_peers():
    assert layouts("AND('A.peer', 'A.member')") == [{"A": 2}]


def test_nested_rules_are_minimised():
    got = layouts("OR(AND('A.peer', 'B.peer'), 'A.peer')")
    assert got == [{"A": 1}]  # AND(A, B) is a superset of A alone
    got = layouts("AND(OR('A.peer', 'B.peer'), OR('B.peer', 'C.peer'))")
    assert {"B": 2} in got and {"A": 1, "B": 1} in got and {"A": 1, "C": 1} in got and {"B": 1, "C": 1} in got


def test_out_of_more_than_rules_is_unsatisfiable():
    env = parse_signature_policy("OutOf(1, 'A.peer')")
    env.rule.n_out_of.n = 2
    assert signature_policy_layouts(env) == []


def test_bad_identity_index_is_a_plan_error():
    env = parse_signature_policy("OR('A.peer')")
    env.rule.n_out_of.rules[0].signed_by = 5
    with pytest.raises(PlanError, match="identity #5"):
        signature_policy_layouts(env)


def _group(
    policies: dict[str, policies_pb2.Policy], children: dict[str, configtx_pb2.ConfigGroup] | None = None
):
    g = configtx_pb2.ConfigGroup()
    for name, p in policies.items():
        g.policies[name].policy.CopyFrom(p)
    for name, child in (children or {}).items():
        g.groups[name].CopyFrom(child)
    return g


def _sig(text: str) -> policies_pb2.Policy:
    return policies_pb2.Policy(
        type=policies_pb2.Policy.SIGNATURE, value=parse_signature_policy(text).SerializeToString()
    )


def _meta(text: str) -> policies_pb2.Policy:
    return policies_pb2.Policy(
        type=policies_pb2.Policy.IMPLICIT_META, value=parse_implicit_meta_policy(text).SerializeToString()
    )


def _channel(rule: str, n_orgs: int, missing: set[str] = frozenset()) -> configtx_pb2.ConfigGroup:
    orgs = {
        f"Org{i}MSP": _group(
            {} if f"Org{i}MSP" in missing else {"Endorsement": _sig(f"OR('Org{i}MSP.peer')")}
        )
        for i in range(1, n_orgs + 1)
    }
    app = _group({"Endorsement": _meta(rule)}, orgs)
    return _group({}, {"Application": app})


def test_majority_of_two_orgs_needs_both():
    assert config_policy_layouts(_channel("MAJORITY Endorsement", 2), "/Channel/Application/Endorsement") == [
        {"Org1MSP": 1, "Org2MSP": 1}
    ]


def test_majority_of_three_orgs_needs_any_two():
    got = config_policy_layouts(_channel("MAJORITY Endorsement", 3), "/Channel/Application/Endorsement")
    assert got == [
        {"Org1MSP": 1, "Org2MSP": 1},
        {"Org1MSP": 1, "Org3MSP": 1},
        {"Org2MSP": 1, "Org3MSP": 1},
    ]


def test_any_and_all():
    assert config_policy_layouts(_channel("ANY Endorsement", 2), "Application/Endorsement") == [
        {"Org1MSP": 1},
        {"Org2MSP": 1},
    ]
    assert config_policy_layouts(_channel("ALL Endorsement", 3), "Application/Endorsement") == [
        {"Org1MSP": 1, "Org2MSP": 1, "Org3MSP": 1}
    ]


def test_org_without_the_sub_policy_cannot_count():
    group = _channel("MAJORITY Endorsement", 3, missing={"Org3MSP"})
    assert config_policy_layouts(group, "/Channel/Application/Endorsement") == [{"Org1MSP": 1, "Org2MSP": 1}]


def test_unknown_policy_path_is_a_plan_error():
    with pytest.raises(PlanError, match="does not exist"):
        config_policy_layouts(_channel("MAJORITY Endorsement", 2), "/Channel/Application/Nope")
    with pytest.raises(PlanError, match="does not exist"):
        config_policy_layouts(_channel("MAJORITY Endorsement", 2), "/Channel/Orderer/Endorsement")


def test_application_policy_forms(material):
    group = parse_config_block(material.genesis).config.channel_group
    both = [{"Org1MSP": 1, "Org2MSP": 1}]
    assert application_policy_layouts(None, group) == both  # default: MAJORITY Endorsement of 2 orgs
    ref = policy_pb2.ApplicationPolicy(channel_config_policy_reference="/Channel/Application/Endorsement")
    assert application_policy_layouts(ref.SerializeToString(), group) == both
    sig = policy_pb2.ApplicationPolicy(
        signature_policy=parse_signature_policy("OR('Org1MSP.peer','Org2MSP.peer')")
    )
    assert application_policy_layouts(sig.SerializeToString(), group) == [{"Org1MSP": 1}, {"Org2MSP": 1}]
    with pytest.raises(PlanError, match="malformed"):
        application_policy_layouts(b"\xff\xff", group)


def test_feasible_layouts_prefer_the_local_org_then_fewest_endorsers():
    lays = minimal_layouts([{"Org2MSP": 1}, {"Org1MSP": 1, "Org3MSP": 1}, {"Org1MSP": 2}, {"Org4MSP": 1}])
    got = feasible_layouts(lays, {"Org1MSP": 1, "Org2MSP": 1, "Org3MSP": 1}, local_mspid="Org1MSP")
    assert got == [{"Org1MSP": 1, "Org3MSP": 1}, {"Org2MSP": 1}]


def test_failure_codes():
    import grpc

    from heddle.peer.gateway.errors import NodeFailure, failure_code

    down = NodeFailure("a:1", "A", "x", grpc.StatusCode.UNAVAILABLE)
    late = NodeFailure("b:1", "B", "x", grpc.StatusCode.DEADLINE_EXCEEDED)
    broken = NodeFailure("c:1", "C", "x", grpc.StatusCode.UNKNOWN)
    assert failure_code([down, late], answered=False) == grpc.StatusCode.UNAVAILABLE
    assert failure_code([late], answered=False) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert failure_code([down, broken], answered=False) == grpc.StatusCode.ABORTED
    assert failure_code([down], answered=True) == grpc.StatusCode.ABORTED
