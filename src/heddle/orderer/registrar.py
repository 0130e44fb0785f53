"""The channels this orderer serves: open at start, join with a config block, remove."""

from __future__ import annotations

import asyncio
import logging
import shutil
from concurrent.futures import Executor
from pathlib import Path

from fabric_protos.common import common_pb2

from heddle.channelconfig import ConfigError, parse_config_block
from heddle.common.deliver import DeliverRefused
from heddle.ledger import BlockStore
from heddle.orderer.channel import BroadcastError, ChannelSupport
from heddle.orderer.consensus.solo import SoloChain

log = logging.getLogger(__name__)

SUPPORTED_CONSENSUS = ("solo", "etcdraft")


class JoinError(Exception):
    """A channel join or remove the participation API refuses; ``http_status`` says how."""

    def __init__(self, http_status: int, message: str):
        super().__init__(message)
        self.http_status = http_status


class OrdererChannel:
    """A channel's support plus its running consensus chain; also a Deliver source."""

    def __init__(self, support: ChannelSupport, chain):
        self.support = support
        self.chain = chain
        self.channel_id = support.channel_id
        self.height_changed = support.height_changed

    @property
    def height(self) -> int:
        return self.support.store.height

    def block(self, number: int) -> common_pb2.Block:
        return self.support.store.get_by_number(number)

    def block_bytes(self, number: int) -> bytes:
        return self.support.store.get_bytes(number)

    def config_sequence(self) -> int:
        return self.support.config.sequence

    def check_deliver(self, parsed) -> None:
        try:
            self.support.check_deliver(parsed)
        except BroadcastError as exc:
            raise DeliverRefused(exc.status, exc.message) from exc


class Registrar:
    def __init__(self, ledger_dir: Path, identity, pool: Executor, cluster=None):
        self.chains_dir = Path(ledger_dir) / "chains"
        self.identity = identity
        self.pool = pool
        self.cluster = cluster  # heddle.orderer.consensus.raft.Cluster, for etcdraft channels
        self.channels: dict[str, OrdererChannel] = {}
        self._lock = asyncio.Lock()

    def get(self, channel_id: str) -> OrdererChannel | None:
        return self.channels.get(channel_id)

    async def start(self) -> None:
        self.chains_dir.mkdir(parents=True, exist_ok=True)
        for d in sorted(self.chains_dir.iterdir()):
            if d.is_dir():
                store = BlockStore(d, index_txids=False)
                if store.height == 0:
                    store.close()
                    log.warning("channel %s has an empty ledger; removing it", d.name)
                    shutil.rmtree(d)
                    continue
                self._open(d.name, store)

    def _open(self, channel_id: str, store: BlockStore) -> OrdererChannel:
        support = ChannelSupport(channel_id, store, self.identity, self.pool)
        consensus = support.config.orderer.consensus_type
        if consensus not in SUPPORTED_CONSENSUS:
            raise JoinError(
                400,
                f"consensus type {consensus!r} is not supported by this orderer yet "
                f"(supported: {', '.join(SUPPORTED_CONSENSUS)})",
            )
        if consensus == "etcdraft":
            from heddle.orderer.consensus.raft import RaftChain

            if self.cluster is None:
                raise JoinError(
                    400,
                    "channel uses etcdraft but this orderer has no cluster listener; "
                    "set General.Cluster.ListenPort in orderer.yaml",
                )
            chain = RaftChain(support, self.cluster)  # not a consenter yet: it onboards by pulling
        else:
            chain = SoloChain(support)
        chain.start()
        channel = OrdererChannel(support, chain)
        self.channels[channel_id] = channel
        log.info("channel %s: serving at height %d", channel_id, store.height)
        return channel

    async def join(self, block_bytes: bytes) -> OrdererChannel:
        block = common_pb2.Block()
        try:
            block.ParseFromString(block_bytes)
        except Exception as exc:
            raise JoinError(400, f"config block is not a valid block: {exc}") from exc
        try:
            config = parse_config_block(block)
        except (ConfigError, ValueError) as exc:
            raise JoinError(400, f"invalid config block: {exc}") from exc
        if block.header.number != 0:
            raise JoinError(
                400,
                "joining with a config block other than the genesis block "
                "needs a Raft cluster to catch up from; use the genesis block",
            )
        if config.orderer is None:
            raise JoinError(400, "config block has no Orderer group")
        if config.orderer.consensus_type not in SUPPORTED_CONSENSUS:
            raise JoinError(
                400,
                f"consensus type {config.orderer.consensus_type!r} is not "
                f"supported by this orderer yet (supported: {', '.join(SUPPORTED_CONSENSUS)})",
            )
        async with self._lock:
            if config.channel_id in self.channels:
                raise JoinError(405, f"cannot join: channel {config.channel_id} already exists")
            d = self.chains_dir / config.channel_id
            if d.exists():
                shutil.rmtree(d)
            store = BlockStore(d, index_txids=False)
            store.append(block)
            return self._open(config.channel_id, store)

    async def remove(self, channel_id: str) -> None:
        async with self._lock:
            channel = self.channels.pop(channel_id, None)
            if channel is None:
                raise JoinError(404, f"cannot remove: channel {channel_id} does not exist")
            await channel.chain.halt()
            channel.support.store.close()
            shutil.rmtree(self.chains_dir / channel_id, ignore_errors=True)
            if hasattr(channel.chain, "erase"):
                channel.chain.erase()

    async def stop(self) -> None:
        for channel in list(self.channels.values()):
            await channel.chain.halt()
            channel.support.store.close()
        self.channels.clear()
