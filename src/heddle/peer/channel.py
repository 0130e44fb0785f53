"""One channel on a peer: its ledger and config, block commit, and a Deliver source.

Commit: verify the block, validate its transactions (signatures and endorsement policies in
parallel, reading committed state only), then MVCC in block order, which also builds the one
state batch; append the block with its TRANSACTIONS_FILTER, then commit state and history.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.channelconfig import ChannelConfig, ConfigError, parse_config_block
from heddle.common.deliver import DeliverRefused
from heddle.ledger.kvledger import KvLedger, block_updates
from heddle.ledger.mvcc import MvccTx, validate_block
from heddle.peer.validator import (
    BlockValidator,
    BlockVerificationError,
    DefinitionLookup,
    EndorsementPolicies,
    LifecyclePolicyLookup,
    TxResult,
    filter_bytes,
    verify_block,
)
from heddle.policy import PolicyError, SignedData
from heddle.protocol import TRANSACTIONS_FILTER_INDEX, block_header_hash, last_config_index

log = logging.getLogger(__name__)
Code = transaction_pb2.TxValidationCode
READERS = "/Channel/Application/Readers"


class PeerChannel:
    """Commits blocks for one channel; one committer at a time, readers concurrently."""

    def __init__(
        self,
        channel_id: str,
        ledger: KvLedger,
        pool: Executor | None,
        definitions: DefinitionLookup | None = None,
        lifecycle_policy: LifecyclePolicyLookup | None = None,
    ):
        self.channel_id = channel_id
        self.ledger = ledger
        self.pool = pool
        self.validator = BlockValidator(channel_id, pool)
        # chaincode definition and _lifecycle policy lookups; default: heddle.chaincode.lifecycle
        self.definitions = definitions
        self.lifecycle_policy = lifecycle_policy
        last = ledger.blocks.last_block
        if last is None:
            raise ValueError(f"channel {channel_id}: ledger is empty")
        config_block = ledger.blocks.get_by_number(last_config_index(last) if last.header.number else 0)
        self.config: ChannelConfig = parse_config_block(config_block)
        self._prev_hash = block_header_hash(last.header)
        self._commit_lock = threading.Lock()
        self.height_changed = asyncio.Condition()
        self.loop: asyncio.AbstractEventLoop | None = None
        # callbacks(block, results) run on the event loop after each commit (events, gateway)
        self.commit_listeners: list[Callable[[common_pb2.Block, list[TxResult]], None]] = []

    @classmethod
    def create(
        cls,
        directory: Path,
        genesis: common_pb2.Block,
        pool: Executor | None,
        state_backend: str | None = None,
        **lookups,
    ) -> PeerChannel:
        """Create the channel's ledger from its genesis block (``peer channel join``)."""
        config = parse_config_block(genesis)  # raises ConfigError on a bad block
        if genesis.header.number != 0:
            raise ConfigError("joining needs the channel's genesis block (block 0)")
        ledger = KvLedger(directory / config.channel_id, state_backend)
        if ledger.height == 0:
            genesis.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = bytes([Code.VALID])
            ledger.commit(genesis, *block_updates(genesis, [Code.VALID]))
        return cls(config.channel_id, ledger, pool, **lookups)

    # ----- Deliver source -----
    @property
    def height(self) -> int:
        return self.ledger.height

    def block(self, number: int) -> common_pb2.Block:
        return self.ledger.blocks.get_by_number(number)

    def block_bytes(self, number: int) -> bytes:
        return self.ledger.blocks.get_bytes(number)

    def config_sequence(self) -> int:
        return self.config.sequence

    def check_readers(self, creator: bytes, data: bytes, signature: bytes) -> None:
        try:
            self.config.policies.evaluate(READERS, [SignedData(data, creator, signature)])
        except PolicyError as exc:
            raise PermissionError(f"access denied by policy {READERS}: {exc}") from exc

    def check_deliver(self, parsed) -> None:
        try:
            self.check_readers(parsed.creator, parsed.envelope.payload, parsed.envelope.signature)
        except PermissionError as exc:
            raise DeliverRefused(common_pb2.FORBIDDEN, str(exc)) from exc

    # ----- commit path -----
    def commit(self, block: common_pb2.Block) -> list[TxResult]:
        """Verify, validate and commit one block (blocking; run it off the event loop)."""
        with self._commit_lock:
            n = block.header.number
            if n < self.ledger.height:
                return []  # already have it (e.g. re-delivered after a reconnect)
            if n != self.ledger.height:
                raise BlockVerificationError(f"expected block {self.ledger.height}, got block {n}")
            verify_block(block, self._prev_hash, self.config)
            state = self.ledger.state
            policies = EndorsementPolicies(state, self.config, self.definitions, self.lifecycle_policy)
            committed = self.ledger.blocks.committed_txids
            results = self.validator.validate(block, self.config, committed, policies)
            new_config = None
            if len(results) == 1 and results[0].code == Code.VALID and results[0].config_envelope:
                try:
                    new_config = parse_config_block(block)
                    if new_config.sequence != self.config.sequence + 1:
                        raise ConfigError(
                            f"config sequence {new_config.sequence} does not follow {self.config.sequence}"
                        )
                except (ConfigError, ValueError) as exc:
                    results[0].code, results[0].reason = Code.INVALID_CONFIG_TRANSACTION, str(exc)
                    new_config = None
            # MVCC and phantom checks in block order; the same pass builds the one state batch
            mvcc_txs = [
                MvccTx(r.code, r.rwsets if r.code == Code.VALID else (), r.policy_namespaces, r.reason)
                for r in results
            ]
            outcome = validate_block(state, n, mvcc_txs)
            for r, code, reason in zip(results, outcome.codes, outcome.reasons, strict=True):
                if code != r.code:
                    log.info("block %d tx %s invalid: %s: %s", n, r.tx_id, Code.Name(code), reason)
                    r.code, r.reason = code, reason
            codes = filter_bytes(results)
            while len(block.metadata.metadata) <= TRANSACTIONS_FILTER_INDEX:
                block.metadata.metadata.append(b"")
            block.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = codes
            txids = [(r.tx_id, i) for i, r in enumerate(results) if r.tx_id]
            self.ledger.commit(block, outcome.batch, outcome.history, txids)
            self._prev_hash = block_header_hash(block.header)
            if new_config is not None:
                self.config = new_config
                log.info("channel %s: config updated to sequence %d", self.channel_id, new_config.sequence)
            return results

    async def commit_async(self, block: common_pb2.Block) -> list[TxResult]:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(None, self.commit, block)
        if results:
            for listener in list(self.commit_listeners):
                try:
                    listener(block, results)
                except Exception:  # a faulty listener must not stop the commit path
                    log.exception("commit listener failed")
            async with self.height_changed:
                self.height_changed.notify_all()
        return results

    def close(self) -> None:
        self.ledger.close()
