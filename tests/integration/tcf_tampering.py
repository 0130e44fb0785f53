"""A malicious host or ledger between a TCF client and the worker, for the tests that show
the client refuses what it rewrote (both in direct and in proxy mode)."""

import base64

from heddle.tcf import crypto


class Tamper:
    """A transport that rewrites work-order results on their way to the client."""

    def __init__(self, inner, edit):
        self.inner, self.edit = inner, edit

    def call(self, method, params):
        reply = self.inner.call(method, params)
        return self.edit(reply) if method == "WorkOrderGetResult" else reply


def flip_data(result):
    """One bit of the encrypted output changed."""
    cipher = bytearray(base64.b64decode(result["outData"][0]["data"]))
    cipher[-1] ^= 1
    result["outData"][0]["data"] = base64.b64encode(bytes(cipher)).decode()
    return result


def resign(result):
    """The result re-signed by a key that is not the worker's."""
    result["workerSignature"] = crypto.sign_hash(crypto.generate_signing_key(), crypto.response_hash(result))
    return result


EDITS = [flip_data, resign]
EDIT_IDS = ["tampered-result", "bad-worker-signature"]
