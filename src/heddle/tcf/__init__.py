"""Trusted compute (EEA Off-Chain Trusted Compute, as Hyperledger Avalon implemented it).

Layers, from pure to I/O (see docs/tcf.md):

* ``codes``, ``crypto``, ``schema``, ``workloads``, ``processor``: the spec's codes, the
  hash/signature/encryption recipes, field checks, workloads and in-enclave work order
  processing; pure, and bundled into the measured enclave applications (``bundle``).
* ``registry`` (workers, work orders, receipts; the access rules) over ``store.Records``;
  ``jsonrpc`` (JSON-RPC 2.0 framing and error codes). A chaincode reuses both.
* ``signup``, ``requester``, ``hospitals``: what a worker publishes and how it is
  verified; the requester's side of a work order; data owners releasing keys by policy.
* I/O shells: ``listener`` (direct mode HTTP), ``worker_host`` (enclaves and the queue),
  ``client`` (the generic client over a ``Transport``), ``story`` (the demo's steps).
"""

from heddle.tcf.client import DirectTransport, RpcError, TcfClient, Transport, WorkOrderOutcome
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError, WorkerStatus, WorkerType
from heddle.tcf.hospitals import EncryptedDataset, Hospital, cleveland_csv, split_records
from heddle.tcf.jsonrpc import TcfService
from heddle.tcf.registry import METHODS, TcfRegistry
from heddle.tcf.requester import PendingWorkOrder, Requester, SealedItem, build_work_order, open_result
from heddle.tcf.signup import WorkerInfo, register_params, signup_nonce, verify_signup
from heddle.tcf.store import Records, SqliteStore

__all__ = [
    "METHODS",
    "DirectTransport",
    "EncryptedDataset",
    "ErrorCode",
    "Hospital",
    "PendingWorkOrder",
    "ReceiptStatus",
    "Records",
    "Requester",
    "RpcError",
    "SealedItem",
    "SqliteStore",
    "TcfClient",
    "TcfError",
    "TcfRegistry",
    "TcfService",
    "Transport",
    "WorkOrderOutcome",
    "WorkerInfo",
    "WorkerStatus",
    "WorkerType",
    "build_work_order",
    "cleveland_csv",
    "open_result",
    "register_params",
    "signup_nonce",
    "split_records",
    "verify_signup",
]
