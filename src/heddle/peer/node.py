"""The peer process: Endorser (system chaincodes), Deliver, and a block puller per channel."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import grpc
from fabric_protos.common import common_pb2

from heddle.chaincode.lifecycle import LifecycleScc, PackageStore, approved_package_id, committed_definition
from heddle.chaincode.runtime import ChaincodeSupport, ChaincodeTarget, target_from_package
from heddle.chaincode.system.cscc import Cscc
from heddle.chaincode.system.qscc import Qscc
from heddle.channelconfig import ConfigError
from heddle.common.process import serve_until_signalled
from heddle.common.tls import GRPC_SERVER_OPTIONS, listen
from heddle.msp import Msp, load_signing_identity
from heddle.peer.blockpuller import BlockPuller
from heddle.peer.channel import PeerChannel
from heddle.peer.config import PeerNodeConfig
from heddle.peer.deliver import PeerDeliver
from heddle.peer.endorser import Endorser
from heddle.peer.gateway import Gateway

log = logging.getLogger(__name__)


class PeerNode:
    def __init__(self, config: PeerNodeConfig):
        self.config = config
        self.identity = load_signing_identity(config.msp_dir, config.mspid)
        self.local_msp = Msp.from_dir(config.msp_dir, config.mspid)
        # Fabric's default: one validation thread per CPU (more only add GIL hand-offs)
        workers = config.validator_pool_size if config.validator_pool_size > 0 else (os.cpu_count() or 2)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peer-crypto")
        self.ledgers_dir = config.file_system_path / "ledgers"
        self.channels: dict[str, PeerChannel] = {}
        self.pullers: dict[str, BlockPuller] = {}
        self.system_chaincodes = {
            "qscc": Qscc(),
            "cscc": Cscc(self.local_msp, self.join_channel_sync, self.channels),
        }
        self.package_store = PackageStore(config.file_system_path / "lifecycle" / "chaincodes")
        self.lifecycle = LifecycleScc()
        self.chaincode_support = ChaincodeSupport(
            execute_timeout=config.chaincode_execute_timeout,
            resolver=self._resolve_chaincode,
            work_dir=config.file_system_path / "chaincode",
        )
        self.endorser = Endorser(self, max_args_bytes=config.max_proposal_args_bytes)
        self._targets: dict[tuple[str, str], tuple[int, ChaincodeTarget]] = {}
        self.gateway = Gateway(self)
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def chaincode_target(self, channel: PeerChannel, name: str) -> ChaincodeTarget:
        """The chaincode this peer runs for ``name`` on ``channel``: the package its org
        approved for the committed definition. LookupError says what is missing.

        Cached until the channel's next block (definitions and approvals only change in
        one; an installed package is never replaced): reading the definition and opening
        the package for every proposal cost more than running the chaincode."""
        key = (channel.channel_id, name)
        height = channel.height
        cached = self._targets.get(key)
        if cached is not None and cached[0] == height:
            return cached[1]
        target = self._chaincode_target(channel, name)
        self._targets[key] = (height, target)
        return target

    def _chaincode_target(self, channel: PeerChannel, name: str) -> ChaincodeTarget:
        state = channel.ledger.state
        definition = committed_definition(state, name)
        if definition is None:
            raise LookupError(f"chaincode {name} is not defined on channel {channel.channel_id}")
        package_id = approved_package_id(state, self.config.mspid, name, definition.sequence)
        if not package_id:
            raise LookupError(
                f"chaincode definition for '{name}' exists, but {self.config.mspid} has not approved a "
                f"package for sequence {definition.sequence}"
            )
        package = self.package_store.get(package_id)
        if package is None:
            raise LookupError(
                f"chaincode definition for '{name}' exists, but chaincode {package_id} is not installed"
            )
        return target_from_package(name, package, work_dir=self.config.file_system_path / "chaincode")

    def _resolve_chaincode(self, channel_id: str, name: str) -> ChaincodeTarget | None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return None
        try:
            return self.chaincode_target(channel, name)
        except LookupError:
            return None

    def _client_tls(self) -> tuple[bytes | None, bytes | None]:
        c = self.config
        if c.client_key and c.client_cert:
            return c.client_key.read_bytes(), c.client_cert.read_bytes()
        return None, None

    def _start_channel(self, channel: PeerChannel) -> None:
        self.channels[channel.channel_id] = channel
        key, cert = self._client_tls()
        puller = BlockPuller(channel, self.identity, self.config.tls.enabled, key, cert)
        self.pullers[channel.channel_id] = puller
        puller.start()

    def join_channel_sync(self, block: common_pb2.Block) -> str:
        """cscc JoinChain; runs on a worker thread, hands the new channel to the event loop."""
        try:
            from heddle.channelconfig import parse_config_block

            channel_id = parse_config_block(block).channel_id
        except (ConfigError, ValueError) as exc:
            raise ValueError(f"invalid genesis block: {exc}") from exc
        if channel_id in self.channels:
            raise ValueError(f"peer is already a member of channel {channel_id}")
        try:
            channel = PeerChannel.create(self.ledgers_dir, block, self.pool, self.config.state_backend)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._adopt(channel), self._loop).result(timeout=30)
        log.warning("joined channel %s", channel_id)
        return channel_id

    async def _adopt(self, channel: PeerChannel) -> None:
        self._start_channel(channel)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.ledgers_dir.mkdir(parents=True, exist_ok=True)
        for d in sorted(self.ledgers_dir.iterdir()):
            if d.is_dir():
                from heddle.ledger.kvledger import KvLedger

                ledger = KvLedger(d, self.config.state_backend)
                if ledger.height == 0:
                    ledger.close()
                    continue
                self._start_channel(PeerChannel(d.name, ledger, self.pool))
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        server.add_generic_rpc_handlers(
            [self.endorser.handler(), PeerDeliver(self.channels, self.pool).handler(), self.gateway.handler()]
        )
        address = self.config.listen_address
        listen(server, address, self.config.tls.server_credentials() if self.config.tls.enabled else None)
        await server.start()
        self._server = server
        log.warning(
            "peer %s (%s) serving on %s, channels: %s",
            self.config.peer_id,
            self.config.mspid,
            address,
            ", ".join(self.channels) or "none",
        )

    async def stop(self) -> None:
        for puller in self.pullers.values():
            await puller.stop()
        await self.chaincode_support.stop()
        await self.gateway.stop()
        if self._server:
            await self._server.stop(grace=1)
        for channel in self.channels.values():
            channel.close()
        self.pool.shutdown(wait=False)


async def run(config: PeerNodeConfig) -> None:
    await serve_until_signalled(PeerNode(config))
