"""The TCF proxy-mode contract: worker registry, work orders, receipts and hospital datasets.

Every TCF method is a contract function taking the method's ``params`` as one JSON
string and returning the result as JSON; the rules are ``heddle.tcf.registry``'s, run
over the world state (``WorldState`` implements the registry's ``Records``), so direct
and proxy mode enforce the same checks. On top of them the contract records the ledger
identity (MSP id and certificate fingerprint) that registered a worker, and only that
identity may update the worker or complete the worker's work orders.

A refusal is an endorsement error whose message reads ``TCF error <code>: <message>``.
The contract emits ``workOrderSubmitted`` and ``workOrderCompleted`` with
``set_event``; fabric-chaincode-python 2.5.4 drops set_event events (they never reach
the COMPLETED message), so the connector derives the same facts from committed writes.

Deploy the folder ``heddle.tcf.chaincode_package.write_chaincode`` writes (this file plus
the rules it imports, embedded); the peer runs it as a chaincode server
(CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS set).
"""

import asyncio
import base64
import binascii
import hashlib
import json

from fabric_chaincode_python.fabric_contract_api import Contract, ContractChaincode, TransactionContext

try:  # the packaged copy of heddle's TCF rules (heddle.tcf.chaincode_package.write_chaincode)
    import heddle_tcf_rules  # noqa: F401
except ImportError:  # run from the heddle source tree
    pass

from heddle.tcf.codes import ErrorCode, TcfError
from heddle.tcf.registry import WORK_ORDER, TcfRegistry

IDENTITY = "identity"  # worker id -> the ledger identity that registered it
DATASET = "dataset"  # owner -> an encrypted dataset (ciphertext and hashes only)


def to_json(value) -> str:
    # sorted keys, no spaces: the same bytes on every endorsing peer
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def state_key(kind: str, key: str) -> str:
    return f"{kind}/{key}"


class WorldState:
    """``Records`` over the world state, called from a worker thread (the registry is sync).

    A Fabric transaction does not read its own writes (GetState returns the committed
    value), but ``Records`` does, as a SQLite transaction does: so what this transaction
    has put is kept here and read back from here, and the registry's rules mean the same
    over both stores (e.g. a receipt created and given the worker's pending update in one
    transaction)."""

    def __init__(self, ctx: TransactionContext, loop: asyncio.AbstractEventLoop) -> None:
        self.stub = ctx.get_stub()
        self.loop = loop
        self.submitted: list[tuple[str, str]] = []
        self._written: dict[tuple[str, str], str] = {}

    def _await(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get(self, kind, key):
        raw = self._written.get((kind, key))
        if raw is None:
            raw = self._await(self.stub.get_state(state_key(kind, key)))
        return json.loads(raw) if raw else None

    def put(self, kind, key, doc):
        text = to_json(doc)
        self._await(self.stub.put_state(state_key(kind, key), text.encode()))
        self._written[(kind, key)] = text

    def scan(self, kind, after=""):
        async def collect():
            start = state_key(kind, after + "\x00" if after else "")
            rows = await self.stub.get_state_by_range(start, f"{kind}0")  # '0' follows '/'
            return {kv.key[len(kind) + 1 :]: kv.value async for kv in rows}

        rows = self._await(collect())
        rows.update({k: v for (d, k), v in self._written.items() if d == kind and k > after})
        for key in sorted(rows):
            yield key, json.loads(rows[key])

    def enqueue(self, work_order_id, worker_id):
        self.submitted.append((work_order_id, worker_id))


def caller(ctx: TransactionContext) -> dict:
    """The submitting client's ledger identity: MSP id and SHA-256 of its certificate."""
    creator = ctx.get_stub().get_creator() or {}
    cert = creator.get("idBytes") or b""
    return {"mspid": creator.get("mspid", ""), "certSha256": hashlib.sha256(bytes(cert)).hexdigest()}


def decode(text: str, what: str = "params"):
    try:
        return json.loads(text)
    except ValueError:
        raise refuse(ErrorCode.INVALID_PARAMETER, f"{what} is not JSON") from None


async def run(ctx: TransactionContext, method: str, *args) -> str:
    """Call ``TcfRegistry.method(*args)`` over the world state; a TcfError becomes a coded error."""
    state = WorldState(ctx, asyncio.get_running_loop())
    registry = TcfRegistry(state)
    try:
        result = await asyncio.to_thread(getattr(registry, method), *args)
    except TcfError as exc:
        raise refuse(exc.code, exc.message) from None
    for wo_id, worker_id in state.submitted:
        ctx.get_stub().set_event("workOrderSubmitted", to_json({"workOrderId": wo_id, "workerId": worker_id}))
    return to_json(result)


def refuse(code: int, message: str) -> ValueError:
    return ValueError(f"TCF error {int(code)}: {message}")


async def registered_identity(ctx: TransactionContext, worker_id: str) -> dict | None:
    raw = await ctx.get_stub().get_state(state_key(IDENTITY, worker_id.lower()))
    return json.loads(raw) if raw else None


async def require_worker_identity(ctx: TransactionContext, worker_id: str) -> None:
    registered = await registered_identity(ctx, worker_id)
    if registered is None:
        raise refuse(ErrorCode.INVALID_PARAMETER, "worker not found")
    if registered != caller(ctx):
        raise refuse(
            ErrorCode.ACCESS_DENIED,
            f"only the ledger identity that registered worker {worker_id[:16]}... "
            f"({registered['mspid']}) may do this",
        )


def field(params: str, name: str) -> str:
    try:
        value = json.loads(params).get(name)
    except (ValueError, AttributeError):
        raise refuse(ErrorCode.INVALID_PARAMETER, "params must be a JSON object") from None
    if not isinstance(value, str) or not value:
        raise refuse(ErrorCode.INVALID_PARAMETER, f"field '{name}' is required")
    return value.lower()


class TrustedCompute(Contract):
    Name = "TrustedCompute"

    # --- workers -----------------------------------------------------------------------

    async def WorkerRegister(self, ctx: TransactionContext, params: str) -> str:
        out = await run(ctx, "worker_register", decode(params))
        worker_id = field(params, "workerId")
        identity = to_json(caller(ctx)).encode()
        await ctx.get_stub().put_state(state_key(IDENTITY, worker_id), identity)
        return out

    async def WorkerUpdate(self, ctx: TransactionContext, params: str) -> str:
        await require_worker_identity(ctx, field(params, "workerId"))
        return await run(ctx, "worker_update", decode(params))

    async def WorkerSetStatus(self, ctx: TransactionContext, params: str) -> str:
        await require_worker_identity(ctx, field(params, "workerId"))
        return await run(ctx, "worker_set_status", decode(params))

    async def WorkerLookUp(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "worker_lookup", decode(params))

    async def WorkerLookUpNext(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "worker_lookup_next", decode(params))

    async def WorkerRetrieve(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "worker_retrieve", decode(params))

    async def WorkerLedgerIdentity(self, ctx: TransactionContext, workerId: str) -> str:
        """The ledger identity (MSP id, certificate SHA-256) allowed to act for a worker."""
        registered = await registered_identity(ctx, workerId)
        if registered is None:
            raise refuse(ErrorCode.INVALID_PARAMETER, "worker not found")
        return to_json(registered)

    # --- work orders ---------------------------------------------------------------------

    async def WorkOrderSubmit(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_submit", decode(params))

    async def WorkOrderGetResult(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_get_result", decode(params))

    async def WorkOrderComplete(
        self, ctx: TransactionContext, workOrderId: str, outcome: str, receipt: str
    ) -> str:
        """A worker's result (or signed failure) and its receipt update; only the worker's
        registered ledger identity may call this, and only once per work order."""
        raw = await ctx.get_stub().get_state(state_key(WORK_ORDER, workOrderId.lower()))
        if not raw:
            raise refuse(ErrorCode.INVALID_PARAMETER, "work order not found")
        await require_worker_identity(ctx, json.loads(raw)["workerId"])
        update = decode(receipt, "receipt") if receipt else None
        result = decode(outcome, "outcome")
        if not isinstance(result, dict) or (update is not None and not isinstance(update, dict)):
            raise refuse(ErrorCode.INVALID_PARAMETER, "outcome and receipt must be JSON objects")
        out = await run(ctx, "complete_work_order", workOrderId, result, update)
        ctx.get_stub().set_event("workOrderCompleted", to_json({"workOrderId": workOrderId.lower()}))
        return out

    # --- receipts ------------------------------------------------------------------------

    async def WorkOrderReceiptCreate(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_create", decode(params))

    async def WorkOrderReceiptUpdate(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_update", decode(params))

    async def WorkOrderReceiptRetrieve(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_retrieve", decode(params))

    async def WorkOrderReceiptUpdateRetrieve(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_update_retrieve", decode(params))

    async def WorkOrderReceiptLookUp(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_lookup", decode(params))

    async def WorkOrderReceiptLookUpNext(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "work_order_receipt_lookup_next", decode(params))

    async def EncryptionKeyGet(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "encryption_key_get", decode(params))

    async def EncryptionKeySet(self, ctx: TransactionContext, params: str) -> str:
        return await run(ctx, "encryption_key_set", decode(params))

    # --- hospitals' encrypted datasets ------------------------------------------------------

    async def DatasetPublish(self, ctx: TransactionContext, dataset: str) -> str:
        """Publish an encrypted dataset: owner, base64 ciphertext, IV and hashes (never a key)."""
        try:
            doc = json.loads(dataset)
            owner = doc["owner"]
            record = {k: str(doc[k]) for k in ("owner", "data", "iv", "data_hash", "ciphertext_hash")}
        except (ValueError, KeyError, TypeError):
            raise refuse(
                ErrorCode.INVALID_PARAMETER, "dataset needs owner, data, iv, data_hash, ciphertext_hash"
            ) from None
        try:
            cipher = base64.b64decode(record["data"], validate=True)
        except binascii.Error:
            raise refuse(ErrorCode.INVALID_PARAMETER, "dataset data is not base64") from None
        if hashlib.sha256(cipher).hexdigest() != record["ciphertext_hash"].lower():
            raise refuse(ErrorCode.INVALID_PARAMETER, "ciphertext_hash does not match the ciphertext")
        key = state_key(DATASET, hashlib.sha256(owner.encode()).hexdigest())
        old = await ctx.get_stub().get_state(key)
        if old and json.loads(old)["publisher"] != caller(ctx):
            raise refuse(ErrorCode.ACCESS_DENIED, f"dataset {owner!r} belongs to another identity")
        record["publisher"] = caller(ctx)
        await ctx.get_stub().put_state(key, to_json(record).encode())
        return to_json({"owner": owner, "ciphertext_hash": record["ciphertext_hash"]})

    async def DatasetGet(self, ctx: TransactionContext, owner: str) -> str:
        raw = await ctx.get_stub().get_state(state_key(DATASET, hashlib.sha256(owner.encode()).hexdigest()))
        if not raw:
            raise refuse(ErrorCode.INVALID_PARAMETER, f"no dataset published by {owner!r}")
        return raw.decode()


if __name__ == "__main__":
    ContractChaincode.new_chaincode(TrustedCompute()).start()
