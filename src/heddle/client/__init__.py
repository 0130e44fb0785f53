"""heddle.client: a Fabric Gateway client SDK (synchronous, on grpc).

It speaks only Fabric's protocol, so it works with heddle peers and Fabric 2.4+ peers alike.
"""

from heddle.client.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    ErrorDetail,
    GatewayError,
    SubmitError,
)
from heddle.client.gateway import (
    BlockEvents,
    CallOptions,
    ChaincodeEvent,
    ChaincodeEvents,
    Commit,
    Contract,
    Gateway,
    Network,
    Proposal,
    Status,
    SubmittedTransaction,
    Transaction,
    connect,
)
from heddle.client.identity import (
    Identity,
    Signer,
    identity_from_msp_dir,
    sha256,
    signer_from_key_pem,
    signer_from_msp_dir,
)
from heddle.client.tls import tls_channel

__all__ = [
    "BlockEvents",
    "CallOptions",
    "ChaincodeEvent",
    "ChaincodeEvents",
    "Commit",
    "CommitError",
    "CommitStatusError",
    "Contract",
    "EndorseError",
    "ErrorDetail",
    "Gateway",
    "GatewayError",
    "Identity",
    "Network",
    "Proposal",
    "Signer",
    "Status",
    "SubmitError",
    "SubmittedTransaction",
    "Transaction",
    "connect",
    "identity_from_msp_dir",
    "sha256",
    "signer_from_key_pem",
    "signer_from_msp_dir",
    "tls_channel",
]
