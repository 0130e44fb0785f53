"""The channel policy tree: paths, ImplicitMeta rules, one verification per signature."""

import pytest
from fabric_protos.common import policies_pb2
from policy_fakes import (
    FakeDeserializer,
    channel_group,
    forged,
    group,
    implicit_policy,
    org_group,
    signature_policy,
    signed,
)

from heddle.policy import PolicyError, PolicyManager


def manager(cg=None, deserializer=None):
    return PolicyManager.from_channel_group(
        cg or channel_group(), deserializer or FakeDeserializer()
    )


def test_paths_absolute_and_relative():
    pm = manager()
    assert pm.has_policy("/Channel/Application/Writers")
    assert pm.has_policy("Application/Writers")
    assert pm.has_policy("/Channel/Orderer/OrdererMSP/Admins")
    assert not pm.has_policy("/Channel/Application/Nope")
    assert not pm.has_policy("/Other/Application/Writers")
    writer = signed("Org1MSP", "app", "client")
    pm.evaluate("Application/Writers", [writer])
    pm.evaluate("/Channel/Application/Org1MSP/Writers", [writer])


def test_unknown_policy_is_an_error_never_a_pass():
    with pytest.raises(PolicyError, match="/Channel/Application/Nope does not exist"):
        manager().evaluate("/Channel/Application/Nope", [signed("Org1MSP", "a", "admin")])


def test_any_all_majority():
    orgs = ("O1", "O2", "O3", "O4")
    cg = group(
        {
            "Any": implicit_policy("ANY", "Admins"),
            "All": implicit_policy("ALL", "Admins"),
            "Majority": implicit_policy("MAJORITY", "Admins"),
        },
        {m: org_group(m) for m in orgs},
    )
    pm = manager(cg)
    admins = [signed(m, "admin", "admin") for m in orgs]

    def result(path, n):
        try:
            pm.evaluate(path, admins[:n])
        except PolicyError:
            return False
        return True

    assert [result("Any", n) for n in range(5)] == [False, True, True, True, True]
    assert [result("All", n) for n in range(5)] == [False, False, False, False, True]
    # MAJORITY of 4 is 3 (more than half).
    assert [result("Majority", n) for n in range(5)] == [False, False, False, True, True]


def test_majority_of_odd_count():
    cg = group(
        {"Majority": implicit_policy("MAJORITY", "Admins")},
        {m: org_group(m) for m in ("O1", "O2", "O3")},
    )
    pm = manager(cg)
    with pytest.raises(PolicyError, match="1 of 2 required sub-policies of 3 met"):
        pm.evaluate("Majority", [signed("O1", "a", "admin")])
    pm.evaluate("Majority", [signed("O1", "a", "admin"), signed("O3", "a", "admin")])


def test_implicit_meta_with_no_child_groups_is_satisfied_as_in_fabric():
    cg = group(
        {
            "Any": implicit_policy("ANY", "Readers"),
            "All": implicit_policy("ALL", "Readers"),
            "Majority": implicit_policy("MAJORITY", "Readers"),
        }
    )
    pm = manager(cg)
    for path in ("Any", "All", "Majority"):
        pm.evaluate(path, [])


def test_child_group_without_the_sub_policy_counts_as_unsatisfied():
    lacking = group({"Readers": signature_policy("OR('O2.member')")})
    cg = group(
        {"All": implicit_policy("ALL", "Admins"), "Any": implicit_policy("ANY", "Admins")},
        {"O1": org_group("O1"), "O2": lacking},
    )
    pm = manager(cg)
    sigs = [signed("O1", "a", "admin"), signed("O2", "a", "admin")]
    with pytest.raises(PolicyError, match="/Channel/O2/Admins does not exist"):
        pm.evaluate("All", sigs)
    pm.evaluate("Any", sigs)


def test_nested_implicit_meta_reason_names_the_failing_orgs():
    pm = manager()
    with pytest.raises(PolicyError) as info:
        pm.evaluate("/Channel/Admins", [signed("Org1MSP", "a", "admin")])
    msg = str(info.value)
    assert "/Channel/Admins (MAJORITY Admins)" in msg
    assert "/Channel/Application/Org2MSP/Admins OR('Org2MSP.admin') not satisfied" in msg
    assert "/Channel/Orderer/OrdererMSP/Admins" in msg


def test_each_signature_is_verified_once_per_evaluation():
    d = FakeDeserializer()
    pm = manager(deserializer=d)
    sigs = [
        signed("Org1MSP", "a", "admin"),
        signed("Org2MSP", "a", "admin"),
        signed("OrdererMSP", "a", "admin"),
        forged("Org2MSP", "b", "admin"),
    ]
    # /Channel/Admins reaches 5 signature policies across 2 levels of ImplicitMeta.
    pm.evaluate("/Channel/Admins", sigs)
    assert d.counters.verify == 4
    assert d.counters.deserialize == 4
    with pytest.raises(PolicyError):
        pm.evaluate("/Channel/Admins", sigs[:1] + sigs[3:])
    assert d.counters.verify == 6


def test_bad_policies_are_refused_at_build_time_with_their_path():
    for bad, fragment in [
        (policies_pb2.Policy(type=policies_pb2.Policy.MSP), "unsupported policy type MSP"),
        (policies_pb2.Policy(type=7), "unsupported policy type 7"),
        (
            policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE, value=b"\xff"),
            "not a SignaturePolicyEnvelope",
        ),
        (
            policies_pb2.Policy(
                type=policies_pb2.Policy.IMPLICIT_META,
                value=policies_pb2.ImplicitMetaPolicy(sub_policy="X", rule=9).SerializeToString(),
            ),
            "unknown ImplicitMeta rule 9",
        ),
    ]:
        cg = group({}, {"Application": group({"Bad": bad})})
        with pytest.raises(PolicyError, match="/Channel/Application/Bad") as info:
            manager(cg)
        assert fragment in str(info.value)
