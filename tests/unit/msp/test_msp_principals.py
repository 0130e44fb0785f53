"""Identity.satisfies_principal for ROLE, IDENTITY, ORGANIZATION_UNIT and ANONYMITY."""

from __future__ import annotations

import pytest
from fabric_protos.msp import msp_principal_pb2 as mp
from msp_pki import NOW, TestCA, msp_config

from heddle.crypto import sha256
from heddle.msp import Identity, Msp, serialize_identity

ROLE = mp.MSPPrincipal.ROLE


def role(mspid: str, r: int) -> mp.MSPPrincipal:
    return mp.MSPPrincipal(
        principal_classification=ROLE,
        principal=mp.MSPRole(msp_identifier=mspid, role=r).SerializeToString(),
    )


def ou(mspid: str, name: str, certifiers: bytes = b"") -> mp.MSPPrincipal:
    return mp.MSPPrincipal(
        principal_classification=mp.MSPPrincipal.ORGANIZATION_UNIT,
        principal=mp.OrganizationUnit(
            msp_identifier=mspid, organizational_unit_identifier=name, certifiers_identifier=certifiers
        ).SerializeToString(),
    )


@pytest.fixture(scope="module")
def idents(org1_ca: TestCA) -> dict[str, Identity]:
    msp = Msp.from_config(msp_config("Org1MSP", [org1_ca]))
    out = {}
    for kind in ("client", "peer", "orderer", "admin"):
        leaf = org1_ca.issue(f"{kind}@org1.example.com", (kind,))
        out[kind] = msp.deserialize_identity(serialize_identity("Org1MSP", leaf.pem), now=NOW)
    return out


ROLE_CASES = [
    (mp.MSPRole.MEMBER, {"client", "peer", "orderer", "admin"}),
    (mp.MSPRole.ADMIN, {"admin"}),
    (mp.MSPRole.CLIENT, {"client"}),
    (mp.MSPRole.PEER, {"peer"}),
    (mp.MSPRole.ORDERER, {"orderer"}),
]


@pytest.mark.parametrize(("msp_role", "who"), ROLE_CASES)
def test_role_principals(idents: dict[str, Identity], msp_role: int, who: set[str]) -> None:
    for kind, ident in idents.items():
        assert ident.satisfies_principal(role("Org1MSP", msp_role)) == (kind in who), kind
        assert not ident.satisfies_principal(role("Org2MSP", msp_role))


def test_identity_principal_is_byte_equality(idents: dict[str, Identity]) -> None:
    client, peer = idents["client"], idents["peer"]
    principal = mp.MSPPrincipal(
        principal_classification=mp.MSPPrincipal.IDENTITY, principal=client.serialized
    )
    assert client.satisfies_principal(principal)
    assert not peer.satisfies_principal(principal)


def test_organization_unit_principal(idents: dict[str, Identity], org1_ca: TestCA) -> None:
    peer = idents["peer"]
    from cryptography.hazmat.primitives.serialization import Encoding

    certifiers = sha256(org1_ca.cert.public_bytes(Encoding.DER))
    assert peer.certifiers_id == certifiers
    assert peer.satisfies_principal(ou("Org1MSP", "peer"))
    assert peer.satisfies_principal(ou("Org1MSP", "peer", certifiers))
    assert not peer.satisfies_principal(ou("Org1MSP", "peer", b"\x00" * 32))
    assert not peer.satisfies_principal(ou("Org1MSP", "client"))
    assert not peer.satisfies_principal(ou("Org2MSP", "peer"))


def test_anonymity_and_unknown_principals(idents: dict[str, Identity]) -> None:
    client = idents["client"]

    def anon(kind: int) -> mp.MSPPrincipal:
        return mp.MSPPrincipal(
            principal_classification=mp.MSPPrincipal.ANONYMITY,
            principal=mp.MSPIdentityAnonymity(anonymity_type=kind).SerializeToString(),
        )

    assert client.satisfies_principal(anon(mp.MSPIdentityAnonymity.NOMINAL))
    assert not client.satisfies_principal(anon(mp.MSPIdentityAnonymity.ANONYMOUS))
    garbage = mp.MSPPrincipal(principal_classification=ROLE, principal=b"\xff\xff")
    assert not client.satisfies_principal(garbage)
