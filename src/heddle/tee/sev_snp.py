"""AMD SEV-SNP attestation reports: parsing, binding checks and the AMD chain.

Layout (AMD SEV Secure Nested Paging Firmware ABI, ATTESTATION_REPORT, version 2 and
later): 0x4A0 bytes; the signature at 0x2A0 (ECDSA P-384 with SHA-384, R and S as
72-byte little-endian integers) covers bytes 0x000-0x29F. POLICY bit 19 allows debug.

The chain is ARK (AMD root, self-signed RSA-PSS) -> ASK -> VCEK (per chip and TCB,
ECDSA P-384) -> report. ``cryptography`` verifies each link, so
:class:`SevSnpVerifier` authenticates fully when it is given AMD's ARK certificates
(published by AMD's Key Distribution Service) as trust anchors and the evidence
carries the ASK and VCEK as collateral. Without a configured ARK it refuses with
:class:`EvidenceNotSupported`. VLEK-signed reports are not supported yet.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from heddle.tee.attestation import Claims
from heddle.tee.enclave.evidence import Evidence, EvidenceFormatError
from heddle.tee.errors import AttestationError, EvidenceNotSupported

SEV_SNP = "sev-snp"
REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SIG_ALGO_ECDSA_P384_SHA384 = 1
POLICY_DEBUG = 1 << 19
KEY_INFO_MASK_CHIP_ID = 1 << 1
KEY_INFO_SIGNING_KEY_SHIFT = 2

# AMD's VCEK extensions: TCB component security patch levels and the chip id.
_OID_SPL = {
    "boot_loader": "1.3.6.1.4.1.3704.1.3.1",
    "tee": "1.3.6.1.4.1.3704.1.3.2",
    "snp": "1.3.6.1.4.1.3704.1.3.3",
    "microcode": "1.3.6.1.4.1.3704.1.3.8",
}
_OID_HWID = "1.3.6.1.4.1.3704.1.4"
_TCB_BYTE = {"boot_loader": 0, "tee": 1, "snp": 6, "microcode": 7}


@dataclass(frozen=True)
class SevSnpReport:
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    key_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    reported_tcb: int
    chip_id: bytes
    signature_r: int
    signature_s: int
    signed_bytes: bytes

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)

    @property
    def signing_key(self) -> int:
        """0: VCEK, 1: VLEK, 7: none."""
        return (self.key_info >> KEY_INFO_SIGNING_KEY_SHIFT) & 0x7


def parse_snp_report(raw: bytes) -> SevSnpReport:
    """Parse an SEV-SNP attestation report (version 2 or later)."""
    if len(raw) != REPORT_SIZE:
        raise EvidenceFormatError(f"SEV-SNP report must be {REPORT_SIZE} bytes, got {len(raw)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
    if version < 2:
        raise EvidenceFormatError(f"SEV-SNP report version {version} is not supported (>= 2)")
    vmpl, algo, current_tcb, platform_info, key_info = struct.unpack_from("<IIQQI", raw, 0x30)
    if algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise EvidenceFormatError(f"SEV-SNP signature algorithm {algo} is not ECDSA P-384")
    (reported_tcb,) = struct.unpack_from("<Q", raw, 0x180)
    sig = raw[SIGNED_SIZE:]
    return SevSnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=raw[0x10:0x20],
        image_id=raw[0x20:0x30],
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        key_info=key_info,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        id_key_digest=raw[0xE0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        reported_tcb=reported_tcb,
        chip_id=raw[0x1A0:0x1E0],
        signature_r=int.from_bytes(sig[0:72], "little"),
        signature_s=int.from_bytes(sig[72:144], "little"),
        signed_bytes=raw[:SIGNED_SIZE],
    )


def _load_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise AttestationError(f"sev-snp: {what} certificate does not parse") from None


def _der_value(raw: bytes) -> bytes:
    """Contents of one short-form DER TLV (INTEGER or OCTET STRING), else ``raw``."""
    if len(raw) >= 2 and raw[0] in (0x02, 0x04) and raw[1] < 0x80 and len(raw) == 2 + raw[1]:
        return raw[2:]
    if len(raw) >= 3 and raw[0] == 0x04 and raw[1] == 0x81 and len(raw) == 3 + raw[2]:
        return raw[3:]
    return raw


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if isinstance(value, x509.UnrecognizedExtension):
        return _der_value(value.value)
    return None


class SevSnpVerifier:
    """``sev-snp`` evidence: report plus ``collateral["ask"]`` and ``collateral["vcek"]``."""

    evidence_type = SEV_SNP

    def __init__(self, trusted_arks: Iterable[x509.Certificate] = ()) -> None:
        self._arks = list(trusted_arks)

    def parse(self, evidence: Evidence) -> Claims:
        r = parse_snp_report(evidence.quote)
        return Claims(
            type=SEV_SNP,
            measurement=r.measurement,
            report_data=r.report_data,
            debug=r.debug,
            details={
                "guest_svn": r.guest_svn,
                "policy": r.policy,
                "vmpl": r.vmpl,
                "reported_tcb": r.reported_tcb,
                "host_data": r.host_data.hex(),
            },
        )

    def authenticate(self, evidence: Evidence, claims: Claims) -> None:
        r = parse_snp_report(evidence.quote)
        if not self._arks:
            raise EvidenceNotSupported(
                "sev-snp: no AMD root key (ARK) certificate is configured, so the report "
                "cannot be chained to AMD; evidence refused"
            )
        if r.signing_key != 0:
            raise EvidenceNotSupported("sev-snp: only VCEK-signed reports are supported")
        if "ask" not in evidence.collateral or "vcek" not in evidence.collateral:
            raise AttestationError("sev-snp: evidence lacks the ASK and VCEK certificates")
        ask = _load_cert(evidence.collateral["ask"], "ASK")
        vcek = _load_cert(evidence.collateral["vcek"], "VCEK")
        self._verify_chain(ask, vcek)
        key = vcek.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise AttestationError("sev-snp: VCEK is not an ECDSA P-384 key")
        try:
            key.verify(
                encode_dss_signature(r.signature_r, r.signature_s),
                r.signed_bytes,
                ec.ECDSA(hashes.SHA384()),
            )
        except InvalidSignature:
            raise AttestationError("sev-snp: report signature does not verify under the VCEK") from None
        self._check_vcek_binds_report(vcek, r)

    def _verify_chain(self, ask: x509.Certificate, vcek: x509.Certificate) -> None:
        for ark in self._arks:
            try:
                ask.verify_directly_issued_by(ark)
            except (ValueError, TypeError, InvalidSignature):
                continue
            try:
                vcek.verify_directly_issued_by(ask)
            except (ValueError, TypeError, InvalidSignature):
                raise AttestationError("sev-snp: VCEK is not signed by the ASK") from None
            return
        raise AttestationError("sev-snp: ASK is not signed by a trusted AMD root key (ARK)")

    @staticmethod
    def _check_vcek_binds_report(vcek: x509.Certificate, r: SevSnpReport) -> None:
        if not r.key_info & KEY_INFO_MASK_CHIP_ID:
            hwid = _extension(vcek, _OID_HWID)
            if hwid is None or not hmac.compare_digest(hwid, r.chip_id):
                raise AttestationError("sev-snp: VCEK hardware id does not match the chip id")
        tcb = r.reported_tcb.to_bytes(8, "little")
        for name, oid in _OID_SPL.items():
            value = _extension(vcek, oid)
            if value is not None and int.from_bytes(value, "big") != tcb[_TCB_BYTE[name]]:
                raise AttestationError(f"sev-snp: VCEK {name} patch level does not match the reported TCB")


def ark_from_pem(pem: bytes) -> x509.Certificate:
    """Load an AMD ARK certificate (self-signed) and check its self-signature."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise AttestationError("sev-snp: ARK certificate is not validly self-signed") from None
    return cert


__all__ = [
    "SEV_SNP",
    "SevSnpReport",
    "SevSnpVerifier",
    "ark_from_pem",
    "parse_snp_report",
]
