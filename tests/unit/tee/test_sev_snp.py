"""SEV-SNP reports and an ARK -> ASK -> VCEK chain built here by the published layout."""

import datetime
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from heddle.tee import (
    AttestationError,
    Evidence,
    EvidenceNotSupported,
    SevSnpVerifier,
    VerificationPolicy,
    parse_snp_report,
    report_data,
    verify_evidence,
)
from heddle.tee.enclave.evidence import EvidenceFormatError
from heddle.tee.sev_snp import POLICY_DEBUG, ark_from_pem

MEASUREMENT = bytes(range(48))
CHIP_ID = bytes(range(100, 164))
NONCE = b"snp-nonce-0123456789"
KEYS = {"tls": b"tls-spki"}
TCB = bytes([3, 0, 0, 0, 0, 0, 8, 115])  # boot_loader, tee, reserved x4, snp, microcode
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, pub, signer, extensions=(), pss=True):
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(pub)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
    )
    for oid, value in extensions:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    return b.sign(signer, hashes.SHA384(), rsa_padding=PSS if pss else None)


@pytest.fixture(scope="module")
def chain():
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _cert("ARK-Test", "ARK-Test", ark_key.public_key(), ark_key)
    ask = _cert("SEV-Test", "ARK-Test", ask_key.public_key(), ark_key)
    exts = [
        ("1.3.6.1.4.1.3704.1.3.1", b"\x02\x01\x03"),
        ("1.3.6.1.4.1.3704.1.3.2", b"\x02\x01\x00"),
        ("1.3.6.1.4.1.3704.1.3.3", b"\x02\x01\x08"),
        ("1.3.6.1.4.1.3704.1.3.8", b"\x02\x01\x73"),
        ("1.3.6.1.4.1.3704.1.4", b"\x04\x40" + CHIP_ID),
    ]
    vcek = _cert("SEV-VCEK", "SEV-Test", vcek_key.public_key(), ask_key, exts, pss=True)
    return dict(ark=ark, ask=ask, vcek=vcek, vcek_key=vcek_key, ark_key=ark_key)


def build_report(vcek_key, *, rdata=None, policy=0x30000, chip_id=CHIP_ID, tcb=TCB, version=2):
    rdata = report_data(KEYS, NONCE) if rdata is None else rdata
    r = bytearray(0x4A0)
    struct.pack_into("<IIQ", r, 0x00, version, 4, policy)
    struct.pack_into("<IIQQI", r, 0x30, 0, 1, int.from_bytes(tcb, "little"), 1, 0)
    r[0x50:0x90] = rdata
    r[0x90:0xC0] = MEASUREMENT
    r[0xC0:0xE0] = b"\x09" * 32
    r[0x180:0x188] = tcb
    r[0x1A0:0x1E0] = chip_id
    sr, ss = decode_dss_signature(vcek_key.sign(bytes(r[:0x2A0]), ec.ECDSA(hashes.SHA384())))
    r[0x2A0:0x2E8] = sr.to_bytes(72, "little")
    r[0x2E8:0x330] = ss.to_bytes(72, "little")
    return bytes(r)


def evidence(chain, report):
    der = serialization.Encoding.DER
    return Evidence(
        "sev-snp",
        report,
        KEYS,
        {"ask": chain["ask"].public_bytes(der), "vcek": chain["vcek"].public_bytes(der)},
    )


POLICY = VerificationPolicy.production([MEASUREMENT])


def verify(chain, report, arks=None, policy=POLICY):
    arks = [chain["ark"]] if arks is None else arks
    return verify_evidence(
        evidence(chain, report), nonce=NONCE, policy=policy, verifiers=[SevSnpVerifier(arks)]
    )


def test_report_fields_parse_at_their_published_offsets(chain):
    rep = parse_snp_report(build_report(chain["vcek_key"]))
    assert rep.version == 2 and rep.guest_svn == 4
    assert rep.measurement == MEASUREMENT
    assert rep.chip_id == CHIP_ID
    assert rep.host_data == b"\x09" * 32
    assert rep.reported_tcb.to_bytes(8, "little") == TCB
    assert rep.report_data == report_data(KEYS, NONCE)
    assert rep.signing_key == 0 and not rep.debug


def test_report_signed_by_a_vcek_chained_to_a_trusted_ark_verifies(chain):
    result = verify(chain, build_report(chain["vcek_key"]))
    assert result.measurement == MEASUREMENT
    assert result.claims.insecure is False


def test_without_a_configured_ark_the_report_is_refused_as_not_supported(chain):
    with pytest.raises(EvidenceNotSupported, match="ARK"):
        verify(chain, build_report(chain["vcek_key"]), arks=[])


def test_untrusted_ark_is_refused(chain):
    other_key = rsa.generate_private_key(65537, 2048)
    other = _cert("ARK-Other", "ARK-Other", other_key.public_key(), other_key)
    with pytest.raises(AttestationError, match="trusted AMD root"):
        verify(chain, build_report(chain["vcek_key"]), arks=[other])


def test_tampered_report_fails_the_vcek_signature(chain):
    rep = bytearray(build_report(chain["vcek_key"]))
    rep[0xC0] ^= 1  # host_data
    with pytest.raises(AttestationError, match="report signature"):
        verify(chain, bytes(rep))


def test_report_from_another_chip_is_refused(chain):
    rep = build_report(chain["vcek_key"], chip_id=bytes(64))
    with pytest.raises(AttestationError, match="hardware id"):
        verify(chain, rep)


def test_reported_tcb_must_match_the_vcek(chain):
    rep = build_report(chain["vcek_key"], tcb=bytes([2, 0, 0, 0, 0, 0, 8, 115]))
    with pytest.raises(AttestationError, match="boot_loader"):
        verify(chain, rep)


def test_binding_and_debug_policy_are_checked(chain):
    with pytest.raises(AttestationError, match="report data"):
        verify(chain, build_report(chain["vcek_key"], rdata=bytes(64)))
    debug = build_report(chain["vcek_key"], policy=0x30000 | POLICY_DEBUG)
    with pytest.raises(AttestationError, match="debug"):
        verify(chain, debug)
    relaxed = VerificationPolicy([MEASUREMENT], allow_debug=True)
    assert verify(chain, debug, policy=relaxed).claims.debug


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r[:-1], "must be 1184"),
        (lambda r: struct.pack("<I", 1) + r[4:], "version 1"),
        (lambda r: r[:0x34] + struct.pack("<I", 2) + r[0x38:], "algorithm 2"),
    ],
)
def test_malformed_reports_are_refused_precisely(chain, mutate, match):
    with pytest.raises(EvidenceFormatError, match=match):
        parse_snp_report(mutate(build_report(chain["vcek_key"])))


def test_ark_from_pem_checks_the_self_signature(chain):
    pem = chain["ark"].public_bytes(serialization.Encoding.PEM)
    assert ark_from_pem(pem) == chain["ark"]
    with pytest.raises(AttestationError, match="self-signed"):
        ark_from_pem(chain["ask"].public_bytes(serialization.Encoding.PEM))
