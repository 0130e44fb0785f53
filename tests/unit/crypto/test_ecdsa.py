"""Low-S signing and high-S rejection, as Fabric requires."""

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from heddle.crypto import EcdsaSigner, SignatureError, generate_key, is_low_s, verify

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_signatures_are_always_low_s_and_verify():
    signer = EcdsaSigner(generate_key())
    for i in range(200):  # about half of raw ECDSA signatures are high-S
        msg = f"message {i}".encode()
        sig = signer.sign(msg)
        assert is_low_s(sig)
        verify(signer.public_key, sig, msg)


def test_high_s_form_of_a_valid_signature_is_rejected():
    signer = EcdsaSigner(generate_key())
    sig = signer.sign(b"payload")
    r, s = decode_dss_signature(sig)
    high = encode_dss_signature(r, N - s)
    with pytest.raises(SignatureError, match="low-S"):
        verify(signer.public_key, high, b"payload")


def test_wrong_message_and_garbage_are_rejected():
    signer = EcdsaSigner(generate_key())
    sig = signer.sign(b"payload")
    with pytest.raises(SignatureError, match="does not verify"):
        verify(signer.public_key, sig, b"other")
    with pytest.raises(SignatureError, match="DER"):
        verify(signer.public_key, b"\x00garbage", b"payload")
    other = EcdsaSigner(generate_key())
    with pytest.raises(SignatureError):
        verify(other.public_key, sig, b"payload")


def test_signer_repr_hides_the_key():
    assert "curve" in repr(EcdsaSigner(generate_key())) and "PRIVATE" not in repr(EcdsaSigner(generate_key()))
