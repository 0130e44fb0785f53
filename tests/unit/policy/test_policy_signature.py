"""Signature-policy evaluation: Fabric's verdicts, signatures checked once, clear reasons."""

import pytest
from fabric_protos.common import policies_pb2
from policy_fakes import FakeDeserializer, forged, ident, signed

from heddle.policy import (
    PolicyError,
    SignaturePolicy,
    SignedData,
    evaluate_signature_policy,
    parse_signature_policy,
)


def ok(text, signed_data, deserializer=None) -> bool:
    try:
        evaluate_signature_policy(
            parse_signature_policy(text), signed_data, deserializer or FakeDeserializer()
        )
    except PolicyError:
        return False
    return True


def test_or_needs_one_matching_signer():
    assert ok("OR('A.member', 'B.member')", [signed("B", "b1")])
    assert not ok("OR('A.member', 'B.member')", [signed("C", "c1")])
    assert not ok("OR('A.member')", [])


def test_and_needs_a_distinct_signer_per_principal():
    assert ok("AND('A.member', 'B.member')", [signed("A", "a1"), signed("B", "b1")])
    assert not ok("AND('A.member', 'B.member')", [signed("A", "a1")])
    # One signature cannot fill two slots for the same principal ...
    assert not ok("AND('A.member', 'A.member')", [signed("A", "a1")])
    assert ok("AND('A.member', 'A.member')", [signed("A", "a1"), signed("A", "a2")])


def test_roles_must_match():
    assert ok("OR('A.admin')", [signed("A", "x", "admin")])
    assert not ok("OR('A.admin')", [signed("A", "x", "client")])
    assert ok("OR('A.member')", [signed("A", "x", "peer")])  # every identity is a member


def test_outof():
    sigs = [signed("A", "a"), signed("C", "c")]
    assert ok("OutOf(2, 'A.member', 'B.member', 'C.member')", sigs)
    assert not ok("OutOf(3, 'A.member', 'B.member', 'C.member')", sigs)
    assert ok("OutOf(0, 'A.member')", [])


def test_nested():
    policy = "AND('A.peer', OR('B.peer', 'C.peer'))"
    assert ok(policy, [signed("A", "p", "peer"), signed("C", "p", "peer")])
    assert not ok(policy, [signed("A", "p", "peer"), signed("C", "p", "client")])


def test_duplicate_identity_counts_once_and_is_verified_once():
    d = FakeDeserializer()
    a1 = signed("A", "a1")
    assert not ok("AND('A.member', 'A.member')", [a1, a1, a1], d)
    assert d.counters.verify == 1


def test_duplicate_after_a_bad_signature_still_counts_like_fabric():
    # An identity is "seen" only once its signature verified.
    assert ok("OR('A.member')", [forged("A", "a1"), signed("A", "a1")])


def test_invalid_signatures_and_unknown_identities_are_skipped_not_fatal():
    d = FakeDeserializer(mspids={"A", "B"})
    sigs = [
        forged("A", "a1"),
        signed("Z", "z1"),
        SignedData(b"x", b"garbage", b""),
        signed("B", "b"),
    ]
    assert ok("OR('B.member')", sigs, d)
    assert not ok("OR('A.member')", sigs, d)


def test_signature_over_other_data_is_invalid():
    sd = signed("A", "a1", data=b"one")
    assert not ok("OR('A.member')", [SignedData(b"two", sd.identity, sd.signature)])


def test_fabric_greedy_matching_is_kept():
    # Fabric fills slots greedily in rule order with the first unused signer: the
    # admin is taken by 'A.member', so 'A.admin' finds nobody. Every Fabric peer
    # rejects this, so heddle must too.
    admin, member = signed("A", "adm", "admin"), signed("A", "mem")
    assert not ok("AND('A.member', 'A.admin')", [admin, member])
    assert ok("AND('A.member', 'A.admin')", [member, admin])
    assert ok("AND('A.admin', 'A.member')", [admin, member])


def test_fabric_semantics_are_not_monotonic():
    # A satisfied OR keeps the marks of every operand that succeeded, so adding
    # b1 lets AND('A','B') inside the OR take a1, starving the outer 'A.member'.
    policy = "AND(OR(AND('A.member', 'B.member'), 'C.member'), 'A.member')"
    a1, b1, c1 = signed("A", "a1"), signed("B", "b1"), signed("C", "c1")
    assert ok(policy, [a1, c1])
    assert not ok(policy, [a1, c1, b1])


def test_failure_reason_names_policy_and_what_is_missing():
    d = FakeDeserializer(mspids={"A", "B"})
    env = parse_signature_policy("AND('A.admin', 'B.peer')")
    sigs = [signed("A", "adm", "admin"), forged("B", "p", "peer"), signed("Q", "q")]
    with pytest.raises(PolicyError) as info:
        evaluate_signature_policy(env, sigs, d, name="policy /Channel/X/Admins")
    msg = str(info.value)
    assert msg.startswith("policy /Channel/X/Admins AND('A.admin', 'B.peer') not satisfied")
    assert "1 of 2 required operand(s) met" in msg
    assert "unmet: 'B.peer'" in msg
    assert "1 valid signer(s) [A]" in msg
    assert "signature 1 by B: invalid" in msg
    assert "unknown MSP 'Q'" in msg


def test_compiled_policy_is_reusable():
    policy = SignaturePolicy(parse_signature_policy("OR('A.member')"), name="acl")
    d = FakeDeserializer()
    policy.evaluate([signed("A", "a")], d)
    with pytest.raises(PolicyError, match="^acl "):
        policy.evaluate([signed("B", "b")], d)


def test_malformed_envelopes_are_refused_when_compiled():
    env = parse_signature_policy("OR('A.member')")
    env.version = 1
    with pytest.raises(PolicyError, match="version 1"):
        SignaturePolicy(env)
    with pytest.raises(PolicyError, match="out of range"):
        SignaturePolicy(
            policies_pb2.SignaturePolicyEnvelope(rule=policies_pb2.SignaturePolicy(signed_by=0))
        )
    with pytest.raises(PolicyError, match="no rule"):
        SignaturePolicy(policies_pb2.SignaturePolicyEnvelope())
    empty_leaf = parse_signature_policy("OR('A.member')")
    empty_leaf.rule.n_out_of.rules.add()
    with pytest.raises(PolicyError, match="empty rule"):
        SignaturePolicy(empty_leaf)
    with pytest.raises(PolicyError, match="not a SignaturePolicyEnvelope"):
        SignaturePolicy.from_bytes(b"\xff\xff\xff")


def test_identity_key_uses_certificate_fingerprint_when_present():
    # Two encodings of one certificate are one signer (Fabric keys by cert hash; a
    # heddle.msp.Identity carries its certificate's SHA-256 as ``fingerprint``).
    class Deser(FakeDeserializer):
        def deserialize_identity(self, serialized):
            identity = super().deserialize_identity(serialized)
            identity.fingerprint = b"same-cert"
            return identity

    a = signed("A", "a1")
    other_encoding = SignedData(a.data, ident("A", "a1", "peer"), a.signature)
    assert not ok("AND('A.member', 'A.member')", [a, other_encoding], Deser())
