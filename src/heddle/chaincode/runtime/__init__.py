"""Chaincode runtime: the peer side of chaincode_shim.proto, launching and ChaincodeSupport.

The endorser calls ``ChaincodeSupport.execute(channel_id, txid, target, input, simulator,
signed_proposal, is_init)`` with a ChaincodeTarget built by ``target_from_package`` (or
``ChaincodeTarget.from_connection`` for a service address).
"""

from heddle.chaincode.runtime.handler import PRIVATE_DATA_UNSUPPORTED, ShimHandler
from heddle.chaincode.runtime.support import ChaincodeSupport, Resolver
from heddle.chaincode.runtime.target import (
    ChaincodeError,
    ChaincodeResult,
    ChaincodeTarget,
    ChaincodeUnresponsive,
    parse_duration,
    target_from_package,
)

__all__ = [
    "PRIVATE_DATA_UNSUPPORTED",
    "ChaincodeError",
    "ChaincodeResult",
    "ChaincodeSupport",
    "ChaincodeTarget",
    "ChaincodeUnresponsive",
    "Resolver",
    "ShimHandler",
    "parse_duration",
    "target_from_package",
]
