"""Intel SGX DCAP (ECDSA) quotes: parsing, binding checks, and where verification stops.

Layout (Intel SGX ECDSA Quote Library reference, quote versions 3 and 4):
a 48-byte header, a 384-byte ISV enclave report body, a 4-byte signature data
length, then the signature data, which starts with the ECDSA P-256 signature over
header and body and the raw attestation public key, followed by certification data
(the QE report, its signature, and the PCK certificate chain).

What this module checks itself: the structure, the quote signature under the
attestation key it carries, the report data, MRENCLAVE and the DEBUG attribute.
Tying the attestation key to Intel's SGX root CA needs the PCK chain, the QE
identity and TCB collateral from Intel, evaluated by Intel's Quote Verification
Library; no well-kept Python library does that, so unless a ``chain_verifier`` is
configured :meth:`SgxDcapVerifier.authenticate` raises :class:`EvidenceNotSupported`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from heddle.tee.attestation import Claims
from heddle.tee.enclave.evidence import Evidence, EvidenceFormatError
from heddle.tee.errors import AttestationError, EvidenceNotSupported

SGX_DCAP = "sgx-dcap"
HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
ATT_KEY_ECDSA_P256 = 2
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
SGX_FLAGS_INITTED = 0x1
SGX_FLAGS_DEBUG = 0x2
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

_HEADER = struct.Struct("<HHIHH16s20s")
# cpu_svn, misc_select, reserved1, isv_ext_prod_id, attributes.flags, attributes.xfrm,
# mr_enclave, reserved2, mr_signer, reserved3, config_id, isv_prod_id, isv_svn,
# config_svn, reserved4, isv_family_id, report_data
_BODY = struct.Struct("<16sI12s16sQQ32s32s32s32s64sHHH42s16s64s")
assert _HEADER.size == HEADER_SIZE and _BODY.size == REPORT_BODY_SIZE


@dataclass(frozen=True)
class SgxQuoteHeader:
    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class SgxReportBody:
    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes_flags: int
    attributes_xfrm: int
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        return bool(self.attributes_flags & SGX_FLAGS_DEBUG)


@dataclass(frozen=True)
class SgxQuote:
    header: SgxQuoteHeader
    body: SgxReportBody
    signature: bytes  # r || s, 64 bytes
    attestation_key: bytes  # x || y, 64 bytes
    certification_data: bytes
    signed_bytes: bytes  # header || body: what the attestation key signs


def parse_sgx_quote(raw: bytes) -> SgxQuote:
    """Parse an SGX ECDSA quote (v3 or v4, SGX TEE type); raise EvidenceFormatError."""
    if len(raw) < HEADER_SIZE + REPORT_BODY_SIZE + 4:
        raise EvidenceFormatError("SGX quote is shorter than header, report body and length")
    version, akt, tee, qe_svn, pce_svn, vendor, user = _HEADER.unpack_from(raw)
    if version not in (3, 4):
        raise EvidenceFormatError(f"SGX quote version {version} is not supported (3 or 4)")
    if akt != ATT_KEY_ECDSA_P256:
        raise EvidenceFormatError(f"attestation key type {akt} is not ECDSA-256-with-P-256")
    if version == 4 and tee == TEE_TYPE_TDX:
        raise EvidenceFormatError("this is a TDX quote, not sgx-dcap evidence")
    if tee != TEE_TYPE_SGX:
        raise EvidenceFormatError(f"unknown TEE type {tee:#x}")
    if version == 4:  # these two fields are reserved in v4
        qe_svn = pce_svn = 0
    header = SgxQuoteHeader(version, akt, tee, qe_svn, pce_svn, vendor, user)
    f = _BODY.unpack_from(raw, HEADER_SIZE)
    body = SgxReportBody(
        cpu_svn=f[0],
        misc_select=f[1],
        isv_ext_prod_id=f[3],
        attributes_flags=f[4],
        attributes_xfrm=f[5],
        mr_enclave=f[6],
        mr_signer=f[8],
        config_id=f[10],
        isv_prod_id=f[11],
        isv_svn=f[12],
        config_svn=f[13],
        isv_family_id=f[15],
        report_data=f[16],
    )
    off = HEADER_SIZE + REPORT_BODY_SIZE
    (sig_len,) = struct.unpack_from("<I", raw, off)
    sig_data = raw[off + 4 :]
    if len(sig_data) != sig_len:
        raise EvidenceFormatError(
            f"signature data length field says {sig_len} bytes, {len(sig_data)} present"
        )
    if sig_len < 128:
        raise EvidenceFormatError("signature data too short for signature and attestation key")
    return SgxQuote(header, body, sig_data[:64], sig_data[64:128], sig_data[128:], raw[:off])


def _verify_quote_signature(q: SgxQuote) -> None:
    x = int.from_bytes(q.attestation_key[:32], "big")
    y = int.from_bytes(q.attestation_key[32:], "big")
    try:
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError:
        raise AttestationError("sgx-dcap: attestation key is not a P-256 point") from None
    sig = encode_dss_signature(
        int.from_bytes(q.signature[:32], "big"), int.from_bytes(q.signature[32:], "big")
    )
    try:
        key.verify(sig, q.signed_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestationError("sgx-dcap: quote signature does not verify") from None


ChainVerifier = Callable[[SgxQuote, Mapping[str, bytes]], None]


class SgxDcapVerifier:
    """``sgx-dcap`` evidence. ``chain_verifier(quote, collateral)`` must raise unless
    the attestation key chains to Intel's SGX root CA with acceptable TCB; without
    one, authentication is refused as not supported."""

    evidence_type = SGX_DCAP

    def __init__(self, chain_verifier: ChainVerifier | None = None) -> None:
        self._chain = chain_verifier

    def parse(self, evidence: Evidence) -> Claims:
        q = parse_sgx_quote(evidence.quote)
        return Claims(
            type=SGX_DCAP,
            measurement=q.body.mr_enclave,
            report_data=q.body.report_data,
            debug=q.body.debug,
            details={
                "mr_signer": q.body.mr_signer.hex(),
                "isv_prod_id": q.body.isv_prod_id,
                "isv_svn": q.body.isv_svn,
                "quote_version": q.header.version,
            },
        )

    def authenticate(self, evidence: Evidence, claims: Claims) -> None:
        q = parse_sgx_quote(evidence.quote)
        _verify_quote_signature(q)
        if not q.body.attributes_flags & SGX_FLAGS_INITTED:
            raise AttestationError("sgx-dcap: enclave is not initialized (INIT attribute unset)")
        if self._chain is None:
            raise EvidenceNotSupported(
                "sgx-dcap: the quote parses and its signature, report data and measurement "
                "check out, but verifying the PCK certificate chain and TCB collateral up to "
                "Intel's SGX root CA is not supported here (it needs Intel's DCAP Quote "
                "Verification Library or an attestation service); evidence refused"
            )
        self._chain(q, evidence.collateral)
