"""Block verification and transaction validation on the committing peer.

Signature and policy work (creator signature, endorsement signatures, the chaincode's or a
key's endorsement policy) for a block's transactions runs in parallel on a thread pool
(``cryptography`` releases the GIL) and only reads committed state; checks that depend on
order (duplicate txids here, MVCC in ``heddle.ledger.mvcc``) run afterwards, in block order.

Endorsement policy (Fabric's default validation): the endorsements of an action are
SignedData(prp || endorser, endorser, signature); invalid or duplicate endorsers are skipped
and the policy decides. For each namespace the action writes (value or metadata writes; the
invoked chaincode when it writes nothing):

- ``_lifecycle``: the lifecycle module's policy for the key (default: the channel's
  /Channel/Application/LifecycleEndorsement);
- otherwise every written key with a committed VALIDATION_PARAMETER must satisfy that
  key-level policy, and if any written key has none, the chaincode's committed definition
  policy (ApplicationPolicy: a signature policy or a channel policy reference) must hold.
  A namespace with no committed definition is ENDORSEMENT_POLICY_FAILURE: in Fabric 2.x the
  lookup of the validation info fails and is reported as a policy failure (INVALID_CHAINCODE
  belonged to the pre-2.0 lifecycle).

Definitions and key metadata come from committed state (earlier blocks). Changes made
earlier in the same block are handled in the ordered MVCC phase: a later transaction relying
on a definition or key policy that a VALID earlier transaction changed is invalidated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.peer import policy_pb2, transaction_pb2
from google.protobuf.message import DecodeError

from heddle.crypto import SignatureError
from heddle.ledger.mvcc import LIFECYCLE_NAMESPACE, validation_parameter
from heddle.policy import PolicyError, SignaturePolicy, SignedData, SignerSet
from heddle.protocol import (
    EndorsedAction,
    NsRwSet,
    ProtocolError,
    block_data_hash,
    block_header_hash,
    block_signatures,
    compute_txid,
    endorsement_message,
    parse_endorser_transaction,
    parse_envelope,
)

log = logging.getLogger(__name__)
Code = transaction_pb2.TxValidationCode
BLOCK_VALIDATION = "/Channel/Orderer/BlockValidation"


class BlockVerificationError(Exception):
    """A block that must not be committed: bad hash chain, data hash or orderer signatures."""


def verify_block(block: common_pb2.Block, previous_hash: bytes | None, config) -> None:
    """Check a block's data hash, its link to the previous block and the orderer signatures."""
    n = block.header.number
    if block_data_hash(block.data) != block.header.data_hash:
        raise BlockVerificationError(f"block {n}: data hash does not match the block's data")
    if previous_hash is not None and block.header.previous_hash != previous_hash:
        raise BlockVerificationError(
            f"block {n}: previous hash {block.header.previous_hash.hex()[:16]}... does not match "
            f"the hash of block {n - 1} ({previous_hash.hex()[:16]}...)"
        )
    signed = [SignedData(msg, creator, sig) for msg, creator, sig in block_signatures(block)]
    if not signed:
        raise BlockVerificationError(f"block {n}: carries no orderer signature")
    try:
        config.policies.evaluate(BLOCK_VALIDATION, signed)
    except PolicyError as exc:
        raise BlockVerificationError(
            f"block {n}: orderer signatures do not satisfy {BLOCK_VALIDATION}: {exc}"
        ) from exc


@dataclass
class TxResult:
    code: int
    tx_id: str = ""
    header_type: int = -1
    actions: list[EndorsedAction] = field(default_factory=list)
    config_envelope: configtx_pb2.ConfigEnvelope | None = None
    reason: str = ""
    # chaincodes whose committed definition the endorsement-policy check relied on
    policy_namespaces: set[str] = field(default_factory=set)

    @property
    def rwsets(self) -> list[NsRwSet]:
        """The read/write sets of all the transaction's actions, in order."""
        return [ns for action in self.actions for ns in action.rwsets]


def _invalid(result: TxResult, code: int, reason: str) -> TxResult:
    result.code, result.reason = code, reason
    return result


def _check_tx(raw: bytes, channel_id: str, config, policies: EndorsementPolicies | None = None) -> TxResult:
    """Checks of one transaction on its own: format, signatures, endorsement policy (reads only)."""
    if not raw:
        return TxResult(Code.NIL_ENVELOPE, reason="empty envelope")
    try:
        parsed = parse_envelope(raw)
    except ProtocolError as exc:
        return TxResult(Code.BAD_PAYLOAD, reason=str(exc))
    chdr = parsed.channel_header
    result = TxResult(Code.VALID, chdr.tx_id, chdr.type)
    if chdr.channel_id != channel_id:
        reason = f"transaction is for channel {chdr.channel_id!r}"
        return _invalid(result, Code.TARGET_CHAIN_NOT_FOUND, reason)
    if chdr.type not in (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG):
        return _invalid(result, Code.UNKNOWN_TX_TYPE, f"header type {chdr.type} is not committed by peers")
    if not parsed.signature_header.nonce or not parsed.creator:
        return _invalid(result, Code.BAD_COMMON_HEADER, "signature header lacks nonce or creator")
    try:
        creator = config.msp_manager.deserialize_identity(parsed.creator)
        creator.verify(parsed.envelope.payload, parsed.envelope.signature)
    except (ValueError, SignatureError) as exc:
        return _invalid(result, Code.BAD_CREATOR_SIGNATURE, f"creator: {exc}")
    if chdr.type == common_pb2.CONFIG:
        env = configtx_pb2.ConfigEnvelope()
        try:
            env.ParseFromString(parsed.payload.data)
        except DecodeError as exc:
            return _invalid(result, Code.INVALID_CONFIG_TRANSACTION, f"malformed ConfigEnvelope: {exc}")
        result.config_envelope = env
        return result
    if chdr.tx_id != compute_txid(parsed.signature_header.nonce, parsed.creator):
        return _invalid(result, Code.BAD_PROPOSAL_TXID, "txid is not hex(sha256(nonce || creator))")
    try:
        result.actions = parse_endorser_transaction(parsed.payload.data)
    except ProtocolError as exc:
        code = Code.NIL_TXACTION if "no actions" in str(exc) else Code.BAD_PAYLOAD
        result.code, result.reason = code, str(exc)
        return result
    if policies is None:  # signatures only (no ledger at hand, e.g. checking stored blocks)
        for action in result.actions:
            for e in action.endorsements:
                try:
                    endorser = config.msp_manager.deserialize_identity(e.endorser)
                    endorser.verify(
                        endorsement_message(action.proposal_response_payload, e.endorser), e.signature
                    )
                except (ValueError, SignatureError) as exc:
                    reason = f"endorsement by an invalid identity or with a bad signature: {exc}"
                    return _invalid(result, Code.ENDORSEMENT_POLICY_FAILURE, reason)
        return result
    for action in result.actions:
        failure = policies.check_action(action, result.policy_namespaces)
        if failure is not None:
            return _invalid(result, *failure)
    return result


DefinitionLookup = Callable[[Any, str], Any]
LifecyclePolicyLookup = Callable[[Any, str], Any]
LIFECYCLE_ENDORSEMENT = "/Channel/Application/LifecycleEndorsement"
_NOT_WRITABLE = frozenset({"lscc", "cscc", "qscc", "escc", "vscc"})


def _default_definition(state, name: str):
    try:
        from heddle.chaincode.lifecycle import committed_definition
    except ImportError:
        return None
    return committed_definition(state, name)


def _default_lifecycle_policy(state, key: str):
    try:
        from heddle.chaincode.lifecycle import validation_policy_for_lifecycle_write
    except ImportError:
        return None
    return validation_policy_for_lifecycle_write(state, key)


class EndorsementPolicies:
    """Evaluates endorsement policies against committed state for one block.

    Read-only and safe to share across the validation pool. ``definitions(state, name)``
    returns the committed chaincode definition (anything with ``validation_parameter``, the
    bytes of a peer ApplicationPolicy) or None; ``lifecycle_policy(state, key)`` returns the
    policy for a _lifecycle write (ApplicationPolicy bytes or message, a SignaturePolicyEnvelope,
    a channel policy path, or None for LifecycleEndorsement). Both default to
    ``heddle.chaincode.lifecycle``.
    """

    def __init__(
        self,
        state,
        config,
        definitions: DefinitionLookup | None = None,
        lifecycle_policy: LifecyclePolicyLookup | None = None,
    ):
        self.state = state
        self.config = config
        self._definitions = definitions or _default_definition
        self._lifecycle_policy = lifecycle_policy or _default_lifecycle_policy
        self._cc_policies: dict[str, tuple[str, Any] | None] = {}
        self._compiled: dict[bytes, SignaturePolicy] = {}
        self._has_metadata: dict[str, bool] = {}  # per namespace, for this block

    # ----- policies -----
    def _signature_policy(self, raw: bytes, name: str) -> SignaturePolicy:
        policy = self._compiled.get(raw)
        if policy is None:
            policy = SignaturePolicy.from_bytes(raw, name)
            self._compiled[raw] = policy
        return policy

    def _coerce(self, value, name: str) -> tuple[str, Any]:
        """A policy as ("signature", SignaturePolicy) or ("channel", path)."""
        if isinstance(value, str):
            return "channel", value
        if isinstance(value, policies_pb2.SignaturePolicyEnvelope):
            return "signature", SignaturePolicy(value, name)
        app = value
        if isinstance(value, bytes | bytearray):
            app = policy_pb2.ApplicationPolicy()
            try:
                app.ParseFromString(bytes(value))
            except DecodeError as exc:
                raise PolicyError(f"{name}: malformed ApplicationPolicy: {exc}") from exc
        if not isinstance(app, policy_pb2.ApplicationPolicy):
            raise PolicyError(f"{name}: unsupported policy type {type(value).__name__}")
        which = app.WhichOneof("Type")
        if which == "signature_policy":
            return "signature", SignaturePolicy(app.signature_policy, name)
        if which == "channel_config_policy_reference":
            return "channel", app.channel_config_policy_reference
        raise PolicyError(f"{name}: ApplicationPolicy sets no policy")

    def chaincode_policy(self, name: str) -> tuple[str, Any] | None:
        """The committed definition's endorsement policy (cached per block), or None if undefined."""
        if name in self._cc_policies:
            return self._cc_policies[name]
        try:
            definition = self._definitions(self.state, name)
        except ValueError as exc:  # a malformed definition in state must not stop the committer
            raise PolicyError(f"chaincode {name}: cannot read its definition: {exc}") from exc
        policy = None
        if definition is not None:
            raw = getattr(definition, "validation_parameter", definition)
            policy = self._coerce(raw, f"endorsement policy of chaincode {name}")
        self._cc_policies[name] = policy
        return policy

    def _satisfied(self, policy: tuple[str, Any], signers: SignerSet) -> None:
        kind, value = policy
        if kind == "signature":
            value.check(signers)
        else:
            evaluate_channel_policy(self.config.policies, value, signers)

    # ----- the check -----
    def check_action(self, action: EndorsedAction, relied_on: set[str]) -> tuple[int, str] | None:
        """None if the action's endorsements satisfy every policy it needs, else (code, reason)."""
        signed = [
            SignedData(
                endorsement_message(action.proposal_response_payload, e.endorser), e.endorser, e.signature
            )
            for e in action.endorsements
        ]
        signers = SignerSet.from_signed_data(signed, self.config.msp_manager)
        written: dict[str, list[str]] = {}
        for ns in action.rwsets:
            keys = [w.key for w in ns.kv.writes] + [m.key for m in ns.kv.metadata_writes]
            if keys:
                written.setdefault(ns.namespace, []).extend(keys)
        if not written:
            written[action.chaincode_name] = []
        for ns, keys in written.items():
            if ns in _NOT_WRITABLE:
                return (
                    Code.ILLEGAL_WRITESET,
                    f"namespace {ns} belongs to a system chaincode and is not writable",
                )
            try:
                if ns == LIFECYCLE_NAMESPACE:
                    self._check_lifecycle(keys, signers)
                else:
                    self._check_namespace(ns, keys, signers, relied_on)
            except PolicyError as exc:
                return Code.ENDORSEMENT_POLICY_FAILURE, str(exc)
        return None

    def _any_metadata(self, ns: str) -> bool:
        """Whether any committed key of ``ns`` carries metadata (so may carry a key-level
        endorsement policy). Asked once per namespace and block instead of reading every
        written key's metadata."""
        known = self._has_metadata.get(ns)
        if known is None:
            known = self._has_metadata[ns] = self.state.has_metadata(ns)
        return known

    def _check_lifecycle(self, keys: list[str], signers: SignerSet) -> None:
        checked: set = set()
        for key in dict.fromkeys(keys) or [""]:
            value = self._lifecycle_policy(self.state, key)
            if value is None:
                value = LIFECYCLE_ENDORSEMENT
            ident = value if isinstance(value, str) else _policy_identity(value)
            if ident in checked:  # a definition writes several keys under one policy
                continue
            self._satisfied(self._coerce(value, f"_lifecycle key {key!r}"), signers)
            checked.add(ident)

    def _check_namespace(self, ns: str, keys: list[str], signers: SignerSet, relied_on: set[str]) -> None:
        needs_chaincode_policy = not keys
        if keys and not self._any_metadata(ns):
            needs_chaincode_policy = True  # no key of ns has a key-level policy: nothing to read
        elif keys:
            committed = self.state.get_many(ns, dict.fromkeys(keys))
            for key, vv in committed.items():
                vp = None if vv is None else validation_parameter(vv.metadata)
                if vp is None:
                    needs_chaincode_policy = True
                    continue
                policy = self._signature_policy(vp, f"key-level endorsement policy of {ns}/{key!r}")
                self._satisfied(("signature", policy), signers)
        if needs_chaincode_policy:
            relied_on.add(ns)
            policy = self.chaincode_policy(ns)
            if policy is None:
                raise PolicyError(f"chaincode {ns} has no committed definition on this channel")
            self._satisfied(policy, signers)


def _policy_identity(value) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value.SerializeToString(deterministic=True)


def evaluate_channel_policy(manager, path: str, signers: SignerSet) -> None:
    """Evaluate a channel policy over signers already verified (no second signature check)."""
    evaluate_signers = getattr(manager, "evaluate_signers", None)
    if evaluate_signers is not None:
        evaluate_signers(path, signers)
        return
    from heddle.policy.manager import _Evaluation

    evaluation = _Evaluation(manager, ())
    evaluation._signers = signers
    evaluation.check(manager._resolve(path))


class BlockValidator:
    """Validates a block's transactions and produces its TRANSACTIONS_FILTER."""

    def __init__(self, channel_id: str, pool: Executor | None = None):
        self.channel_id = channel_id
        self.pool = pool

    def validate(
        self,
        block: common_pb2.Block,
        config,
        committed_txids: Callable[[list[str]], set[str]],
        policies: EndorsementPolicies | None = None,
    ) -> list[TxResult]:
        """Parallel checks, then duplicate txids in order. ``committed_txids(txids)`` says which
        txids earlier blocks hold (one lookup for the whole block). Without ``policies``
        endorsement signatures are verified but no endorsement policy is evaluated."""
        data = list(block.data.data)
        if self.pool is not None and len(data) > 1:
            # a few chunks per worker, not a task per transaction: each task is a queue put,
            # a future and a thread wake-up, as much as a quarter of a transaction's checks
            workers = getattr(self.pool, "_max_workers", 4)
            size = max(1, -(-len(data) // (4 * workers)))
            chunks = [data[i : i + size] for i in range(0, len(data), size)]

            def check(chunk: list[bytes]) -> list[TxResult]:
                return [_check_tx(raw, self.channel_id, config, policies) for raw in chunk]

            results = [r for part in self.pool.map(check, chunks) for r in part]
        else:
            results = [_check_tx(raw, self.channel_id, config, policies) for raw in data]
        committed = committed_txids([r.tx_id for r in results if r.code == Code.VALID and r.tx_id])
        seen: set[str] = set()
        for i, r in enumerate(results):
            if r.code == Code.VALID and r.config_envelope is not None and len(data) != 1:
                reason = "a config transaction must be alone in its block"
                _invalid(r, Code.INVALID_CONFIG_TRANSACTION, reason)
            if r.code == Code.VALID and r.tx_id and (r.tx_id in seen or r.tx_id in committed):
                _invalid(r, Code.DUPLICATE_TXID, f"txid {r.tx_id} was already used on this channel")
            if r.tx_id:
                seen.add(r.tx_id)
            if r.code != Code.VALID:
                log.info(
                    "block %d tx %d (%s) invalid: %s: %s",
                    block.header.number,
                    i,
                    r.tx_id,
                    Code.Name(r.code),
                    r.reason,
                )
        return results


def filter_bytes(results: list[TxResult]) -> bytes:
    return bytes(r.code for r in results)


__all__ = [
    "BlockValidator",
    "EndorsementPolicies",
    "BlockVerificationError",
    "TxResult",
    "block_header_hash",
    "filter_bytes",
    "verify_block",
]
