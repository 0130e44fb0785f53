"""MSP validation: chain, validity window, CRLs, NodeOU roles, SerializedIdentity."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.msp import identities_pb2, msp_config_pb2
from msp_pki import NOW, YEAR, TestCA, msp_config, pem

from heddle.crypto import EcdsaSigner, SignatureError
from heddle.msp import (
    Identity,
    Msp,
    MspError,
    MspManager,
    SigningIdentity,
    parse_serialized_identity,
    serialize_identity,
)

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def org1(org1_ca: TestCA) -> Msp:
    return Msp.from_config(msp_config("Org1MSP", [org1_ca]))


def test_valid_client_is_accepted_with_its_role(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("User1@org1.example.com", ("client",))
    ident = org1.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)
    assert ident.mspid == "Org1MSP"
    assert ident.roles == {"member", "client"}
    assert ident.certificate == leaf.cert
    org1.validate(ident, now=NOW)
    org1.validate(leaf.cert, now=NOW)


def test_two_encodings_of_one_certificate_share_its_fingerprint(org1: Msp, org1_ca: TestCA) -> None:
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = org1_ca.issue("User2@org1.example.com", ("client",))
    tidy = org1.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)
    padded = org1.deserialize_identity(serialize_identity("Org1MSP", b"\n" + leaf.pem + b"\n\n"), now=NOW)
    assert tidy.serialized != padded.serialized
    der_hash = hashlib.sha256(leaf.cert.public_bytes(Encoding.DER)).digest()
    assert tidy.fingerprint == padded.fingerprint == der_hash


@pytest.mark.parametrize("ou", ["client", "peer", "orderer", "admin"])
def test_each_node_ou_grants_its_role(org1: Msp, org1_ca: TestCA, ou: str) -> None:
    leaf = org1_ca.issue(f"{ou}.org1.example.com", (ou,))
    ident = org1.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)
    assert ident.roles == {"member", ou}


def test_expired_certificate_is_rejected(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("old@org1.example.com", not_before=NOW - 3 * YEAR, not_after=NOW - YEAR)
    with pytest.raises(MspError, match=r"^certificate expired at 2029-01-01T00:00:00Z$"):
        org1.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)
    with pytest.raises(MspError, match="certificate expired at"):
        org1.validate(leaf.cert, now=NOW)


def test_not_yet_valid_certificate_is_rejected(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("future@org1.example.com", not_before=NOW + YEAR, not_after=NOW + 2 * YEAR)
    with pytest.raises(MspError, match="^certificate is not yet valid"):
        org1.validate(leaf.cert, now=NOW)


def test_certificate_from_another_ca_is_rejected(org1: Msp, org2_ca: TestCA) -> None:
    leaf = org2_ca.issue("User1@org2.example.com")
    with pytest.raises(MspError, match=r"^certificate not issued by any CA of MSP 'Org1MSP'$"):
        org1.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)


def test_impostor_ca_with_same_name_is_rejected(org1: Msp) -> None:
    impostor = TestCA("ca.org1.example.com")  # same subject, different key
    leaf = impostor.issue("User1@org1.example.com")
    with pytest.raises(MspError, match="not issued by any CA of MSP 'Org1MSP'"):
        org1.validate(leaf.cert, now=NOW)


def test_revoked_certificate_is_rejected(org1_ca: TestCA) -> None:
    revoked = org1_ca.issue("gone@org1.example.com")
    kept = org1_ca.issue("kept@org1.example.com")
    msp = Msp.from_config(msp_config("Org1MSP", [org1_ca], crls=[org1_ca.crl(revoked.cert)]))
    with pytest.raises(MspError, match=r"^certificate has been revoked$"):
        msp.deserialize_identity(serialize_identity("Org1MSP", revoked.pem), now=NOW)
    msp.validate(kept.cert, now=NOW)


def test_crl_signed_by_another_ca_is_ignored(org1_ca: TestCA, org2_ca: TestCA) -> None:
    leaf = org1_ca.issue("User1@org1.example.com")
    forged = TestCA("ca.org1.example.com").crl(leaf.cert)  # right issuer name, wrong key
    msp = Msp.from_config(msp_config("Org1MSP", [org1_ca], crls=[forged, org2_ca.crl(leaf.cert)]))
    msp.validate(leaf.cert, now=NOW)


def test_identity_without_node_ou_is_rejected(org1: Msp, org1_ca: TestCA) -> None:
    for ous in [(), ("engineering",)]:
        leaf = org1_ca.issue("nobody@org1.example.com", ous)
        with pytest.raises(MspError, match=r"^identity has no NodeOU role \(client, peer, admin, orderer\)$"):
            org1.validate(leaf.cert, now=NOW)


def test_identity_with_two_node_ous_is_rejected(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("both@org1.example.com", ("client", "peer"))
    with pytest.raises(MspError, match=r"more than one NodeOU role \(client, peer\)"):
        org1.validate(leaf.cert, now=NOW)


def test_node_ou_certified_by_another_ca_grants_no_role(org1_ca: TestCA, org2_ca: TestCA) -> None:
    msp = Msp.from_config(msp_config("Org1MSP", [org1_ca, org2_ca], ou_certifier=org2_ca.pem))
    with pytest.raises(MspError, match="no NodeOU role"):
        msp.validate(org1_ca.issue("User1@org1.example.com", ("client",)).cert, now=NOW)
    msp.validate(org2_ca.issue("User1@org2.example.com", ("client",)).cert, now=NOW)


def test_wrong_node_ou_role_fails_role_principal(org1: Msp, org1_ca: TestCA) -> None:
    from fabric_protos.msp import msp_principal_pb2 as mp

    client = org1_ca.issue("User1@org1.example.com", ("client",))
    ident = org1.deserialize_identity(serialize_identity("Org1MSP", client.pem), now=NOW)
    peer_role = mp.MSPPrincipal(
        principal_classification=mp.MSPPrincipal.ROLE,
        principal=mp.MSPRole(msp_identifier="Org1MSP", role=mp.MSPRole.PEER).SerializeToString(),
    )
    assert not ident.satisfies_principal(peer_role)


def test_ca_certificate_cannot_be_an_identity(org1: Msp, org1_ca: TestCA) -> None:
    with pytest.raises(MspError, match="CA certificate cannot be used as an identity"):
        org1.validate(org1_ca.cert, now=NOW)


def test_chain_through_intermediate_and_its_revocation() -> None:
    root = TestCA("ca.org3.example.com")
    inter = TestCA("ica.org3.example.com", parent=root)
    leaf = inter.issue("User1@org3.example.com")
    msp = Msp.from_config(msp_config("Org3MSP", [root], intermediates=[inter]))
    ident = msp.deserialize_identity(serialize_identity("Org3MSP", leaf.pem), now=NOW)
    assert ident.roles == {"member", "client"}
    revoking = Msp.from_config(
        msp_config("Org3MSP", [root], intermediates=[inter], crls=[root.crl(inter.cert)])
    )
    with pytest.raises(MspError, match="certificate has been revoked"):
        revoking.validate(leaf.cert, now=NOW)
    # without the intermediate in the MSP the leaf does not chain
    with pytest.raises(MspError, match="not issued by any CA"):
        Msp.from_config(msp_config("Org3MSP", [root])).validate(leaf.cert, now=NOW)


def test_intermediate_must_chain_to_a_root(org1_ca: TestCA) -> None:
    stray = TestCA("ica.elsewhere.com", parent=TestCA("ca.elsewhere.com"))
    with pytest.raises(MspError, match="not issued by any CA of MSP 'Org1MSP'"):
        Msp.from_config(msp_config("Org1MSP", [org1_ca], intermediates=[stray]))


def test_cached_identity_still_expires(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("soon@org1.example.com", not_after=NOW + dt.timedelta(days=1))
    sid = serialize_identity("Org1MSP", leaf.pem)
    first = org1.deserialize_identity(sid, now=NOW)
    assert org1.deserialize_identity(sid, now=NOW) is first  # served from the cache
    with pytest.raises(MspError, match="certificate expired at"):
        org1.deserialize_identity(sid, now=NOW + dt.timedelta(days=2))


def test_serialized_identity_round_trip(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("User1@org1.example.com")
    sid = serialize_identity("Org1MSP", leaf.pem)
    parsed = identities_pb2.SerializedIdentity.FromString(sid)
    assert parsed.mspid == "Org1MSP" and parsed.id_bytes == leaf.pem
    assert parse_serialized_identity(sid) == ("Org1MSP", leaf.pem)
    ident = org1.deserialize_identity(sid, now=NOW)
    assert ident.serialized == sid
    assert Identity("Org1MSP", leaf.cert).serialized == sid
    assert serialize_identity(ident.mspid, pem(ident.certificate)) == sid


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xff\xff", identities_pb2.SerializedIdentity(mspid="Org1MSP").SerializeToString()]
)
def test_malformed_serialized_identity(raw: bytes, org1: Msp) -> None:
    with pytest.raises(MspError, match="^malformed SerializedIdentity$"):
        MspManager([org1]).deserialize_identity(raw)


def test_garbage_certificate_in_serialized_identity(org1: Msp) -> None:
    with pytest.raises(MspError, match="could not parse certificate"):
        org1.deserialize_identity(serialize_identity("Org1MSP", b"not a cert"), now=NOW)


def test_manager_routes_by_mspid(org1: Msp, org1_ca: TestCA, org2_ca: TestCA) -> None:
    org2 = Msp.from_config(msp_config("Org2MSP", [org2_ca]))
    manager = MspManager([org1, org2])
    assert manager.mspids == ["Org1MSP", "Org2MSP"]
    assert manager.get("Org2MSP") is org2
    leaf = org2_ca.issue("User1@org2.example.com")
    assert manager.deserialize_identity(serialize_identity("Org2MSP", leaf.pem), NOW).mspid == "Org2MSP"
    with pytest.raises(MspError, match=r"^unknown MSP 'Org9MSP'$"):
        manager.deserialize_identity(serialize_identity("Org9MSP", leaf.pem))
    # an Org2 certificate claimed by Org1 is not an Org1 member
    with pytest.raises(MspError, match="not issued by any CA of MSP 'Org1MSP'"):
        manager.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), NOW)
    with pytest.raises(MspError, match="duplicate MSP"):
        MspManager([org1, org1])


def test_legacy_admin_certs_grant_admin(org1_ca: TestCA) -> None:
    admin = org1_ca.issue("Admin@org1.example.com", ())
    user = org1_ca.issue("User1@org1.example.com", ())
    msp = Msp.from_config(msp_config("Org1MSP", [org1_ca], admins=[admin.pem], node_ous=False))
    assert msp.deserialize_identity(serialize_identity("Org1MSP", admin.pem), NOW).roles == {
        "member",
        "admin",
    }
    assert msp.deserialize_identity(serialize_identity("Org1MSP", user.pem), NOW).roles == {"member"}


def test_unsupported_msp_type_and_missing_roots() -> None:
    with pytest.raises(MspError, match="unsupported MSP type 1"):
        Msp.from_config(msp_config_pb2.MSPConfig(type=1))
    empty = msp_config_pb2.FabricMSPConfig(name="X").SerializeToString()
    with pytest.raises(MspError, match="no root CA certificate"):
        Msp.from_config(msp_config_pb2.MSPConfig(type=0, config=empty))


def test_to_config_round_trips(org1_ca: TestCA) -> None:
    config = msp_config("Org1MSP", [org1_ca], crls=[org1_ca.crl()])
    msp = Msp.from_config(config)
    assert msp.to_config() == config
    assert Msp.from_config(msp.to_config()).mspid == "Org1MSP"


def test_identity_verifies_low_s_and_rejects_high_s(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("User1@org1.example.com")
    ident = SigningIdentity("Org1MSP", leaf.cert, EcdsaSigner(leaf.key))
    sig = ident.sign(b"payload")
    validated = org1.deserialize_identity(ident.serialized, now=NOW)
    validated.verify(b"payload", sig)
    with pytest.raises(SignatureError):
        validated.verify(b"other", sig)
    r, s = decode_dss_signature(sig)
    with pytest.raises(SignatureError, match="low-S"):
        validated.verify(b"payload", encode_dss_signature(r, P256_N - s))


def test_signing_identity_rejects_mismatched_key(org1_ca: TestCA) -> None:
    a, b = org1_ca.issue("a@org1.example.com"), org1_ca.issue("b@org1.example.com")
    with pytest.raises(MspError, match="does not match"):
        SigningIdentity("Org1MSP", a.cert, EcdsaSigner(b.key))


def test_reprs_show_no_key_material(org1: Msp, org1_ca: TestCA) -> None:
    leaf = org1_ca.issue("User1@org1.example.com")
    ident = SigningIdentity("Org1MSP", leaf.cert, EcdsaSigner(leaf.key), roles={"client"})
    text = repr(ident) + repr(ident.signer) + repr(org1)
    assert "User1@org1.example.com" in text and "client" in text
    d = leaf.key.private_numbers().private_value
    assert str(d) not in text and format(d, "x") not in text and "PRIVATE" not in text
