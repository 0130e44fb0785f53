"""Regenerate src/heddle/tcf/data/test-vectors.json (python tests/unit/tcf/make_vectors.py).

The expected hashes are computed here directly with hashlib, independently of
heddle.tcf.crypto, from the recipe text in docs/tcf.md; the tests then check heddle's
implementation against the file. Randomised outputs (ECDSA, RSA-OAEP) are published as
values to verify or decrypt with the published keys.
"""

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OUT = Path(__file__).resolve().parents[3] / "src/heddle/tcf/data/test-vectors.json"


def h(s: str) -> bytes:
    return hashlib.sha256(s.encode()).digest()


def b64h(s: str) -> str:
    return base64.b64encode(h(s)).decode()


def items(xs):
    return "".join(
        b64h(
            x.get("dataHash", "")
            + x.get("data", "")
            + x.get("encryptedDataEncryptionKey", "")
            + x.get("iv", "")
        )
        for x in sorted(xs, key=lambda x: x["index"])
    )


def main():
    sk = ec.derive_private_key(
        0x1F2E3D4C5B6A79880123456789ABCDEF0FEDCBA98765432100112233445566, ec.SECP256K1()
    )
    rk = rsa.generate_private_key(65537, 3072)
    key = bytes(range(32))
    iv = bytes.fromhex("000102030405060708090a0b")
    plain = b"25 10 1 67 102 125 1 95 5 10 1 11 36 1"
    request = {
        "workOrderId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "workerId": "4f1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ff",
        "workloadId": "68656172742d646973656173652d6576616c",
        "requesterId": "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b",
        "requesterNonce": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "inData": [
            {
                "index": 1,
                "dataHash": "aa" * 32,
                "data": "c2Vjb25k",
                "encryptedDataEncryptionKey": "null",
                "iv": "0102030405060708090a0b0c",
            },
            {"index": 0, "dataHash": "", "data": "Zmlyc3Q=", "encryptedDataEncryptionKey": "-", "iv": ""},
        ],
        "outData": [{"index": 0, "data": "", "encryptedDataEncryptionKey": "", "iv": ""}],
    }
    r = request
    req_hash = h(
        b64h(r["requesterNonce"] + r["workOrderId"] + r["workerId"] + r["workloadId"] + r["requesterId"])
        + items(r["inData"])
        + items(r["outData"])
    )
    result = {
        "workOrderId": r["workOrderId"],
        "workloadId": r["workloadId"],
        "workerId": r["workerId"],
        "requesterId": r["requesterId"],
        "workerNonce": "0badc0de0badc0de0badc0de0badc0de",
        "outData": [
            {
                "index": 0,
                "dataHash": "bb" * 32,
                "data": "cmVzdWx0",
                "encryptedDataEncryptionKey": "",
                "iv": "0c0b0a090807060504030201",
            }
        ],
    }
    res_hash = h(
        b64h(result["workerNonce"] + r["workOrderId"] + r["workerId"] + r["workloadId"] + r["requesterId"])
        + items(result["outData"])
    )
    receipt = {
        "workOrderId": r["workOrderId"],
        "workerServiceId": r["workerId"],
        "workerId": r["workerId"],
        "requesterId": r["requesterId"],
        "receiptCreateStatus": 0,
        "workOrderRequestHash": req_hash.hex(),
        "requesterGeneratedNonce": "00112233445566778899aabbccddeeff",
    }
    rc_hash = h("".join(str(receipt[k]) for k in receipt))
    update = {"workOrderId": r["workOrderId"], "updateType": 1, "updateData": res_hash.hex()}
    ru_hash = h(update["workOrderId"] + "1" + update["updateData"])

    def pem(k):
        return (
            k.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    doc = {
        "description": "heddle TCF test vectors: hash recipes (TCF 6.1.8.1, 6.1.8.2, 7.2.2, 7.2.7), "
        "secp256k1 ECDSA-SHA256 signatures, RSA-OAEP-SHA256 key wrapping, AES-256-GCM",
        "aesGcm": {
            "key": key.hex(),
            "iv": iv.hex(),
            "plaintext": plain.hex(),
            "ciphertextWithTag": AESGCM(key).encrypt(iv, plain, None).hex(),
        },
        "requestHash": {"params": request, "hash": req_hash.hex()},
        "responseHash": {"result": result, "hash": res_hash.hex()},
        "receiptCreateHash": {"params": receipt, "hash": rc_hash.hex()},
        "receiptUpdateHash": {"params": update, "hash": ru_hash.hex()},
        "signature": {
            "privateKeyHex": format(sk.private_numbers().private_value, "064x"),
            "verifyingKey": pem(sk),
            "hash": req_hash.hex(),
            "signature": base64.b64encode(sk.sign(req_hash, ec.ECDSA(hashes.SHA256()))).decode(),
        },
        "rsaOaep": {
            "privateKey": rk.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "publicKey": pem(rk),
            "wrappedKey": rk.public_key().encrypt(key, oaep).hex(),
            "key": key.hex(),
        },
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
