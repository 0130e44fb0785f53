"""SGX DCAP quotes built here by the published v3/v4 layout."""

import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from heddle.tee import (
    AttestationError,
    Evidence,
    EvidenceNotSupported,
    SgxDcapVerifier,
    VerificationPolicy,
    parse_sgx_quote,
    report_data,
    verify_evidence,
)
from heddle.tee.enclave.evidence import EvidenceFormatError
from heddle.tee.sgx import INTEL_QE_VENDOR_ID, SGX_FLAGS_DEBUG, SGX_FLAGS_INITTED

MRENCLAVE = bytes(range(32))
MRSIGNER = bytes(range(32, 64))
NONCE = b"sgx-nonce-0123456789"
KEYS = {"tls": b"\x30\x01tls-key-der"}
ATT_KEY = ec.derive_private_key(424242, ec.SECP256R1())
PCK_CERT_DATA = b"\x05\x00" + struct.pack("<I", 3) + b"PEM"  # type 5: PCK chain, 3 bytes


def build_quote(
    *, version=3, rdata=None, flags=SGX_FLAGS_INITTED, tee_type=0, key=ATT_KEY, cert_data=PCK_CERT_DATA
):
    rdata = report_data(KEYS, NONCE) if rdata is None else rdata
    header = struct.pack("<HHIHH16s20s", version, 2, tee_type, 7, 9, INTEL_QE_VENDOR_ID, bytes(20))
    body = b"".join(
        [
            b"\x01" * 16,  # cpu_svn
            struct.pack("<I", 0),  # misc_select
            bytes(12),  # reserved1
            b"\x02" * 16,  # isv_ext_prod_id
            struct.pack("<QQ", flags, 0xE7),  # attributes
            MRENCLAVE,
            bytes(32),  # reserved2
            MRSIGNER,
            bytes(32),  # reserved3
            b"\x03" * 64,  # config_id
            struct.pack("<HHH", 5, 6, 0),  # isv_prod_id, isv_svn, config_svn
            bytes(42),  # reserved4
            b"\x04" * 16,  # isv_family_id
            rdata,
        ]
    )
    assert len(header) == 48 and len(body) == 384
    r, s = decode_dss_signature(key.sign(header + body, ec.ECDSA(hashes.SHA256())))
    nums = key.public_key().public_numbers()
    sig_data = (
        r.to_bytes(32, "big")
        + s.to_bytes(32, "big")
        + nums.x.to_bytes(32, "big")
        + nums.y.to_bytes(32, "big")
        + cert_data
    )
    return header + body + struct.pack("<I", len(sig_data)) + sig_data


def evidence(quote):
    return Evidence("sgx-dcap", quote, KEYS)


POLICY = VerificationPolicy.production([MRENCLAVE])


@pytest.mark.parametrize("version", [3, 4])
def test_quote_fields_parse_at_their_published_offsets(version):
    q = parse_sgx_quote(build_quote(version=version))
    assert q.header.version == version
    assert q.header.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert q.body.mr_enclave == MRENCLAVE
    assert q.body.mr_signer == MRSIGNER
    assert (q.body.isv_prod_id, q.body.isv_svn) == (5, 6)
    assert q.body.attributes_xfrm == 0xE7
    assert q.body.report_data == report_data(KEYS, NONCE)
    assert q.body.debug is False
    assert q.certification_data.startswith(b"\x05\x00")


def test_well_formed_quote_reaches_the_chain_step_and_is_refused_as_not_supported():
    with pytest.raises(EvidenceNotSupported, match="Intel's SGX root CA"):
        verify_evidence(evidence(build_quote()), nonce=NONCE, policy=POLICY, verifiers=[SgxDcapVerifier()])


def test_configured_chain_verifier_decides():
    seen = []
    verifier = SgxDcapVerifier(chain_verifier=lambda q, c: seen.append(q.body.mr_signer))
    result = verify_evidence(evidence(build_quote()), nonce=NONCE, policy=POLICY, verifiers=[verifier])
    assert result.measurement == MRENCLAVE and seen == [MRSIGNER]

    def refuse(q, c):
        raise AttestationError("TCB out of date")

    with pytest.raises(AttestationError, match="TCB out of date"):
        verify_evidence(
            evidence(build_quote()), nonce=NONCE, policy=POLICY, verifiers=[SgxDcapVerifier(refuse)]
        )


def test_report_data_binding_is_checked_before_the_chain():
    with pytest.raises(AttestationError, match="report data") as info:
        verify_evidence(
            evidence(build_quote(rdata=bytes(64))), nonce=NONCE, policy=POLICY, verifiers=[SgxDcapVerifier()]
        )
    assert not isinstance(info.value, EvidenceNotSupported)


def test_debug_enclave_is_refused_by_policy():
    quote = build_quote(flags=SGX_FLAGS_INITTED | SGX_FLAGS_DEBUG)
    assert parse_sgx_quote(quote).body.debug
    with pytest.raises(AttestationError, match="debug"):
        verify_evidence(
            evidence(quote), nonce=NONCE, policy=POLICY, verifiers=[SgxDcapVerifier(lambda q, c: None)]
        )


def test_tampered_quote_body_fails_the_attestation_key_signature():
    quote = bytearray(build_quote())
    quote[48 + 16] ^= 1  # misc_select
    with pytest.raises(AttestationError, match="quote signature"):
        verify_evidence(
            evidence(bytes(quote)), nonce=NONCE, policy=POLICY, verifiers=[SgxDcapVerifier(lambda q, c: None)]
        )


def test_unknown_measurement_is_refused():
    with pytest.raises(AttestationError, match="not allowed"):
        verify_evidence(
            evidence(build_quote()),
            nonce=NONCE,
            policy=VerificationPolicy.production([bytes(32)]),
            verifiers=[SgxDcapVerifier(lambda q, c: None)],
        )


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda q: q[:400], "shorter"),
        (lambda q: struct.pack("<H", 5) + q[2:], "version 5"),
        (lambda q: q[:2] + struct.pack("<H", 3) + q[4:], "ECDSA-256"),
        (lambda q: q[:-1], "length field"),
    ],
)
def test_malformed_quotes_are_refused_precisely(mutate, match):
    with pytest.raises(EvidenceFormatError, match=match):
        parse_sgx_quote(mutate(build_quote()))


def test_tdx_quote_is_not_sgx_evidence():
    with pytest.raises(EvidenceFormatError, match="TDX"):
        parse_sgx_quote(build_quote(version=4, tee_type=0x81))
