"""Pulls a channel's blocks from the ordering service over Deliver and commits them."""

from __future__ import annotations

import asyncio
import logging
import random

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.orderer import ab_pb2

from heddle.common.deliver import MAX_BLOCK, seek_info, seek_payload
from heddle.common.tls import GRPC_OPTIONS, client_credentials
from heddle.peer.channel import PeerChannel
from heddle.peer.validator import BlockVerificationError

log = logging.getLogger(__name__)


def seek_envelope(
    identity,
    channel_id: str,
    start: int,
    stop: int = MAX_BLOCK,
    behavior: int = ab_pb2.SeekInfo.BLOCK_UNTIL_READY,
) -> common_pb2.Envelope:
    """A signed DELIVER_SEEK_INFO envelope for blocks start..stop."""
    payload = seek_payload(channel_id, identity.serialized, seek_info(start, stop, behavior))
    return common_pb2.Envelope(payload=payload, signature=identity.sign(payload))


def orderer_tls_roots(channel: PeerChannel) -> list[bytes]:
    roots: list[bytes] = []
    for org in channel.config.orderer.orgs.values():
        fmc = msp_config_pb2.FabricMSPConfig()
        fmc.ParseFromString(org.msp_config.config)
        roots.extend(fmc.tls_root_certs)
        roots.extend(fmc.tls_intermediate_certs)
    return roots


class BlockPuller:
    """Keeps one channel's ledger in step with the ordering service, reconnecting as needed."""

    def __init__(
        self,
        channel: PeerChannel,
        identity,
        tls_enabled: bool,
        client_key: bytes | None = None,
        client_cert: bytes | None = None,
    ):
        self.channel = channel
        self.identity = identity
        self.tls_enabled = tls_enabled
        self.client_key = client_key
        self.client_cert = client_cert
        self._task: asyncio.Task | None = None
        self.connected_to: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"puller-{self.channel.channel_id}"
        )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _open(self, endpoint: str) -> grpc.aio.Channel:
        if self.tls_enabled:
            creds = client_credentials(orderer_tls_roots(self.channel), self.client_key, self.client_cert)
            return grpc.aio.secure_channel(endpoint, creds, options=GRPC_OPTIONS)
        return grpc.aio.insecure_channel(endpoint, options=GRPC_OPTIONS)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            endpoints = list(self.channel.config.orderer.addresses)
            if not endpoints:
                log.error("channel %s: no orderer endpoints in the channel config", self.channel.channel_id)
                await asyncio.sleep(5)
                continue
            random.shuffle(endpoints)
            for endpoint in endpoints:
                try:
                    await self._pull(endpoint)
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except BlockVerificationError as exc:
                    log.error(
                        "channel %s: refusing block from %s: %s", self.channel.channel_id, endpoint, exc
                    )
                except Exception as exc:
                    log.warning(
                        "channel %s: deliver from %s failed: %s", self.channel.channel_id, endpoint, exc
                    )
                finally:
                    self.connected_to = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _pull(self, endpoint: str) -> None:
        async with self._open(endpoint) as chan:
            stub = chan.stream_stream(
                "/orderer.AtomicBroadcast/Deliver",
                request_serializer=common_pb2.Envelope.SerializeToString,
                response_deserializer=ab_pb2.DeliverResponse.FromString,
            )
            env = seek_envelope(self.identity, self.channel.channel_id, self.channel.height)
            call = stub(iter([env]))
            self.connected_to = endpoint
            async for resp in call:
                kind = resp.WhichOneof("Type")
                if kind == "block":
                    await self.channel.commit_async(resp.block)
                elif kind == "status":
                    raise RuntimeError(
                        f"orderer ended delivery with status {common_pb2.Status.Name(resp.status)}"
                    )
