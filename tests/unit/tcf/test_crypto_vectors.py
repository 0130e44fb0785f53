"""TCF crypto against the published test vectors, and the properties the vectors cannot show."""

import json
from importlib import resources

import pytest
from cryptography.hazmat.primitives import serialization

from heddle.tcf import crypto


@pytest.fixture(scope="module")
def vectors():
    return json.loads(resources.files("heddle.tcf").joinpath("data/test-vectors.json").read_text())


def test_request_hash_matches_the_vector(vectors):
    v = vectors["requestHash"]
    assert crypto.request_hash(v["params"]).hex() == v["hash"]


def test_request_hash_orders_items_by_index_not_by_position(vectors):
    params = dict(vectors["requestHash"]["params"])
    params["inData"] = list(reversed(params["inData"]))
    assert crypto.request_hash(params).hex() == vectors["requestHash"]["hash"]


def test_request_hash_changes_with_any_covered_field(vectors):
    base = vectors["requestHash"]["params"]
    for field in ("requesterNonce", "workOrderId", "workerId", "workloadId", "requesterId"):
        changed = {**base, field: base[field] + "00"}
        assert crypto.request_hash(changed).hex() != vectors["requestHash"]["hash"], field
    item = {**base["inData"][0], "iv": "ff" * 12}
    assert (
        crypto.request_hash({**base, "inData": [item, base["inData"][1]]}).hex()
        != vectors["requestHash"]["hash"]
    )


def test_response_and_receipt_hashes_match_the_vectors(vectors):
    assert crypto.response_hash(vectors["responseHash"]["result"]).hex() == vectors["responseHash"]["hash"]
    assert (
        crypto.receipt_create_hash(vectors["receiptCreateHash"]["params"]).hex()
        == vectors["receiptCreateHash"]["hash"]
    )
    assert (
        crypto.receipt_update_hash(vectors["receiptUpdateHash"]["params"]).hex()
        == vectors["receiptUpdateHash"]["hash"]
    )


def test_secp256k1_signature_vector_verifies_and_a_changed_hash_does_not(vectors):
    v = vectors["signature"]
    crypto.verify_hash(v["verifyingKey"], bytes.fromhex(v["hash"]), v["signature"])
    with pytest.raises(crypto.CryptoError, match="does not verify"):
        crypto.verify_hash(v["verifyingKey"], bytes.fromhex("00" * 32), v["signature"])
    with pytest.raises(crypto.CryptoError, match="base64"):
        crypto.verify_hash(v["verifyingKey"], bytes.fromhex(v["hash"]), "not base64!")


def test_our_signatures_verify_under_the_vector_key(vectors):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(int(vectors["signature"]["privateKeyHex"], 16), ec.SECP256K1())
    assert crypto.public_pem(key) == vectors["signature"]["verifyingKey"]
    sig = crypto.sign_hash(key, b"\x01" * 32)
    crypto.verify_hash(vectors["signature"]["verifyingKey"], b"\x01" * 32, sig)


def test_rsa_oaep_vector_unwraps_to_the_key(vectors):
    v = vectors["rsaOaep"]
    private = serialization.load_pem_private_key(v["privateKey"].encode(), None)
    assert crypto.unwrap_key(private, v["wrappedKey"]).hex() == v["key"]
    rewrapped = crypto.wrap_key(v["publicKey"], bytes.fromhex(v["key"]))
    assert rewrapped != v["wrappedKey"]  # OAEP is randomised
    assert crypto.unwrap_key(private, rewrapped).hex() == v["key"]


def test_aes_gcm_vector(vectors):
    v = vectors["aesGcm"]
    key, iv = bytes.fromhex(v["key"]), bytes.fromhex(v["iv"])
    assert crypto.encrypt_with_iv(key, iv, bytes.fromhex(v["plaintext"])).hex() == v["ciphertextWithTag"]
    assert crypto.decrypt(key, iv, bytes.fromhex(v["ciphertextWithTag"])).hex() == v["plaintext"]


def test_every_encryption_draws_a_fresh_iv():
    key = crypto.new_key()
    ivs = {crypto.encrypt(key, b"same")[1] for _ in range(200)}
    assert len(ivs) == 200 and all(len(iv) == crypto.IV_SIZE for iv in ivs)


def test_tampered_ciphertext_fails_authentication():
    key = crypto.new_key()
    cipher, iv = crypto.encrypt(key, b"patient record")
    bad = bytes([cipher[0] ^ 1]) + cipher[1:]
    with pytest.raises(crypto.CryptoError, match="tampered"):
        crypto.decrypt(key, iv, bad)


def test_malformed_hex_and_keys_are_refused():
    with pytest.raises(crypto.CryptoError):
        crypto.from_hex("abc")
    with pytest.raises(crypto.CryptoError):
        crypto.from_hex("zz")
    with pytest.raises(crypto.CryptoError, match="PEM"):
        crypto.load_verifying_key("-----BEGIN nonsense")
