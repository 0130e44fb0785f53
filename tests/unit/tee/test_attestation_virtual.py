from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from heddle.tee import (
    AttestationError,
    Evidence,
    EvidenceNotSupported,
    VerificationPolicy,
    VirtualPlatform,
    report_data,
    verify_evidence,
)
from heddle.tee.enclave.evidence import EvidenceFormatError, VirtualQuote
from heddle.tee.enclave.tls import spki

MEAS = bytes.fromhex("11" * 32)
NONCE = b"verifier-nonce-0123456789abcdef"


def _key_der():
    return spki(ec.generate_private_key(ec.SECP256R1()).public_key())


KEYS = {"tls": _key_der(), "signing": _key_der()}


def make_evidence(
    platform, *, nonce=NONCE, keys=KEYS, measurement=MEAS, debug=False, insecure=True, root_dir=None
):
    root_dir = root_dir or platform.directory
    root = serialization.load_pem_private_key((root_dir / "root.key").read_bytes(), None)
    q = VirtualQuote(
        measurement, report_data(keys, nonce), VirtualPlatform(root_dir).platform_id, debug, insecure
    )
    sig = root.sign(q.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    return Evidence("virtual", replace(q, signature=sig).to_bytes(), dict(keys))


def dev(platform, **kw):
    return dict(policy=VerificationPolicy.development([MEAS], **kw), verifiers=[platform.verifier()])


def test_good_virtual_evidence_verifies_under_a_development_policy(platform):
    result = verify_evidence(make_evidence(platform), nonce=NONCE, **dev(platform))
    assert result.measurement == MEAS
    assert result.claims.insecure is True
    assert result.public_keys == KEYS


def test_evidence_round_trips_through_bytes(platform):
    ev = make_evidence(platform)
    assert Evidence.from_bytes(ev.to_bytes()) == ev
    result = verify_evidence(ev.to_bytes(), nonce=NONCE, **dev(platform))
    assert result.measurement == MEAS
    with pytest.raises(EvidenceFormatError):
        Evidence.from_bytes(b"{not json")
    with pytest.raises(AttestationError, match="malformed"):
        verify_evidence(b'{"type": 1}', nonce=NONCE, **dev(platform))


def test_production_policy_refuses_virtual_evidence(platform):
    with pytest.raises(AttestationError, match="'virtual' is not accepted"):
        verify_evidence(
            make_evidence(platform),
            nonce=NONCE,
            policy=VerificationPolicy.production([MEAS]),
            verifiers=[platform.verifier()],
        )
    assert "virtual" not in VerificationPolicy([MEAS]).accepted_types


def test_other_measurement_is_refused(platform):
    ev = make_evidence(platform, measurement=bytes(32))
    with pytest.raises(AttestationError, match="measurement .* not allowed"):
        verify_evidence(ev, nonce=NONCE, **dev(platform))


def test_wrong_nonce_is_refused_as_stale(platform):
    with pytest.raises(AttestationError, match="report data"):
        verify_evidence(make_evidence(platform), nonce=b"another-nonce-000000", **dev(platform))


def test_substituted_public_key_is_refused(platform):
    ev = make_evidence(platform)
    swapped = replace(ev, public_keys={**ev.public_keys, "tls": _key_der()})
    with pytest.raises(AttestationError, match="report data"):
        verify_evidence(swapped, nonce=NONCE, **dev(platform))


def test_tampered_quote_fails_its_signature(platform):
    ev = make_evidence(platform)
    q = VirtualQuote.from_bytes(ev.quote)
    # a forged measurement the policy allows, with the original signature
    forged = replace(q, measurement=MEAS, debug=False)
    ev2 = make_evidence(platform, measurement=bytes(32))
    q2 = VirtualQuote.from_bytes(ev2.quote)
    tampered = replace(ev2, quote=replace(forged, signature=q2.signature).to_bytes())
    with pytest.raises(AttestationError, match="signature does not verify"):
        verify_evidence(tampered, nonce=NONCE, **dev(platform))


def test_evidence_from_an_untrusted_platform_is_refused(platform, tmp_path):
    other = VirtualPlatform.ensure(tmp_path / "other")
    ev = make_evidence(other, root_dir=other.directory)
    with pytest.raises(AttestationError, match="untrusted virtual platform"):
        verify_evidence(ev, nonce=NONCE, **dev(platform))


def test_debug_enclave_needs_a_policy_that_allows_debug(platform):
    ev = make_evidence(platform, debug=True)
    assert verify_evidence(ev, nonce=NONCE, **dev(platform)).claims.debug
    with pytest.raises(AttestationError, match="debug"):
        verify_evidence(ev, nonce=NONCE, **dev(platform, allow_debug=False))


def test_quote_not_flagged_insecure_is_refused(platform):
    ev = make_evidence(platform, insecure=False)
    with pytest.raises(AttestationError, match="insecure"):
        verify_evidence(ev, nonce=NONCE, **dev(platform))


def test_missing_verifier_is_not_supported(platform):
    policy = VerificationPolicy.development([MEAS])
    with pytest.raises(EvidenceNotSupported, match="no verifier"):
        verify_evidence(make_evidence(platform), nonce=NONCE, policy=policy, verifiers=[])


def test_platform_files_are_private_and_repr_shows_no_secret(platform):
    for name in ("root.key", "seal.secret"):
        assert (platform.directory / name).stat().st_mode & 0o077 == 0
    secret = (platform.directory / "seal.secret").read_bytes()
    assert secret.hex() not in repr(platform)
    assert VirtualPlatform.ensure(platform.directory).platform_id == platform.platform_id


def test_loading_a_missing_platform_says_how_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="ensure"):
        VirtualPlatform(tmp_path)
