"""System chaincodes the peer runs in-process."""

from heddle.chaincode.system.base import SccError, SystemChaincode

__all__ = ["SccError", "SystemChaincode"]
