"""The signature-policy language: parse to Fabric's envelope layout, format back."""

import pytest
from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

from heddle.policy import (
    PolicyError,
    describe_principal,
    format_implicit_meta_policy,
    format_signature_policy,
    parse_implicit_meta_policy,
    parse_signature_policy,
)

ROLE = msp_principal_pb2.MSPRole


def principals(env):
    out = []
    for p in env.identities:
        assert p.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE
        r = ROLE()
        r.ParseFromString(p.principal)
        out.append((r.msp_identifier, ROLE.MSPRoleType.Name(r.role).lower()))
    return out


def shape(rule):
    if rule.WhichOneof("Type") == "signed_by":
        return rule.signed_by
    return (rule.n_out_of.n, [shape(r) for r in rule.n_out_of.rules])


def test_or_of_one_principal_matches_configtxgen_bytes():
    env = parse_signature_policy("OR('Org1MSP.admin')")
    # Bytes configtxgen wrote for Org1MSP/Admins in the fixture genesis block.
    assert env.SerializeToString().hex() == ("120812060801120208001a0d120b0a074f7267314d53501001")


def test_and_or_outof_map_to_n_out_of():
    assert shape(parse_signature_policy("AND('A.member', 'B.member')").rule) == (2, [0, 1])
    assert shape(parse_signature_policy("OR('A.member', 'B.member')").rule) == (1, [0, 1])
    env = parse_signature_policy("OutOf(2, 'A.member', 'B.member', 'C.member')")
    assert shape(env.rule) == (2, [0, 1, 2])
    assert env.version == 0


def test_principals_are_numbered_per_gate_in_post_order_like_fabric():
    env = parse_signature_policy("AND('A.member', OR('B.member', 'C.peer'), 'D.admin')")
    # The nested OR's principals come first, then the outer gate's own.
    assert principals(env) == [("B", "member"), ("C", "peer"), ("A", "member"), ("D", "admin")]
    assert shape(env.rule) == (3, [2, (1, [0, 1]), 3])


def test_repeated_principals_are_not_deduplicated_like_fabric():
    env = parse_signature_policy("OutOf(2, 'A.member', 'A.member')")
    assert principals(env) == [("A", "member"), ("A", "member")]
    assert shape(env.rule) == (2, [0, 1])


@pytest.mark.parametrize("role", ["member", "admin", "client", "peer", "orderer"])
def test_every_role_parses(role):
    env = parse_signature_policy(f"OR('Org1.example.com.{role}')")
    assert principals(env) == [("Org1.example.com", role)]


def test_operators_are_case_insensitive_and_quotes_either_kind():
    a = parse_signature_policy("""and('A.member', Or("B.peer"), OUTOF(1, 'C.admin'))""")
    b = parse_signature_policy("AND('A.member', OR('B.peer'), OutOf(1, 'C.admin'))")
    assert a.SerializeToString() == b.SerializeToString()


def test_whitespace_is_free():
    a = parse_signature_policy("  OutOf ( 1 ,'A.member',\n\t'B.member' ) ")
    b = parse_signature_policy("OutOf(1, 'A.member', 'B.member')")
    assert a == b


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("AND()", "expected a principal or a gate"),
        ("AND('A.superuser')", "bad principal 'A.superuser'"),
        ("AND('.member')", "bad principal"),
        ("XOR('A.member')", "unknown operator 'XOR'"),
        ("OutOf(3, 'A.member', 'B.member')", "has only 2 operand"),
        ("OutOf('A.member', 'B.member')", "needs a whole number"),
        ("OutOf(1.5, 'A.member')", "unexpected character '.'"),
        ("AND('A.member'", "ends early"),
        ("'A.member'", "must start with AND, OR or OutOf"),
        ("AND('A.member') OR('B.member')", "unexpected 'OR'"),
        ("AND('A.member)", "unexpected character"),
        ("AND('A.member' 'B.member')", "expected ',' or ')'"),
        ("AND(1)", "expected a principal or a gate"),
    ],
)
def test_bad_policies_raise_policy_error_saying_what_is_wrong(text, fragment):
    with pytest.raises(PolicyError, match=None) as info:
        parse_signature_policy(text)
    assert fragment in str(info.value)


def test_deep_nesting_is_refused_not_a_recursion_error():
    text = "AND(" * 200 + "'A.member'" + ")" * 200
    with pytest.raises(PolicyError, match="deeper"):
        parse_signature_policy(text)


def test_outof_zero_is_accepted_as_fabric_does():
    env = parse_signature_policy("OutOf(0, 'A.member')")
    assert shape(env.rule) == (0, [0])
    assert format_signature_policy(env) == "OutOf(0, 'A.member')"


@pytest.mark.parametrize(
    "text",
    [
        "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')",
        "AND('A.member', 'B.member')",
        "OutOf(2, 'A.member', 'B.member', 'C.member')",
        "AND('A.member', OR('B.peer', AND('C.admin', 'D.orderer')), 'E.client')",
        "OR('A.member')",
    ],
)
def test_format_writes_the_canonical_text(text):
    assert format_signature_policy(parse_signature_policy(text)) == text


def test_format_refuses_what_the_language_cannot_express():
    env = parse_signature_policy("OR('A.member')")
    env.identities[0].principal_classification = msp_principal_pb2.MSPPrincipal.IDENTITY
    with pytest.raises(PolicyError, match="IDENTITY principals"):
        format_signature_policy(env)
    with pytest.raises(PolicyError, match="out of range"):
        format_signature_policy(
            policies_pb2.SignaturePolicyEnvelope(rule=policies_pb2.SignaturePolicy(signed_by=3))
        )
    with pytest.raises(PolicyError, match="no rule"):
        format_signature_policy(policies_pb2.SignaturePolicyEnvelope())


def test_describe_principal():
    env = parse_signature_policy("OR('Org2MSP.peer')")
    assert describe_principal(env.identities[0]) == "'Org2MSP.peer'"


def test_implicit_meta_text_round_trips():
    meta = parse_implicit_meta_policy("MAJORITY Admins")
    assert meta.rule == policies_pb2.ImplicitMetaPolicy.MAJORITY
    assert meta.sub_policy == "Admins"
    assert format_implicit_meta_policy(meta) == "MAJORITY Admins"
    assert parse_implicit_meta_policy("any Readers").rule == policies_pb2.ImplicitMetaPolicy.ANY
    for bad in ["MAJORITY", "SOME Admins", "ANY Readers Writers"]:
        with pytest.raises(PolicyError):
            parse_implicit_meta_policy(bad)
