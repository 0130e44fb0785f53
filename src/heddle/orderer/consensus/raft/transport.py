"""Orderer-to-orderer traffic: Fabric's ``orderer.Cluster/Step`` over gRPC with mutual TLS.

The server side authenticates every stream by the client TLS certificate it presents: the
certificate must equal a consenter's ``client_tls_cert`` in the channel's config (pinning),
which also names the sender's Raft node id. Anything else is logged and refused. The client
side keeps one Step stream per remote consenter and sends Raft messages
(``ConsensusRequest.payload`` = heddle.raft codec bytes) and forwarded Broadcast messages
(``SubmitRequest``) on it.

Fault injection (tests): with ``HEDDLE_FAULT_INJECTION=1`` in the environment, the JSON file
``<ledger>/cluster-faults.json`` (``{"drop": ["host:port", ...]}``) names consenter
endpoints whose traffic this orderer drops in both directions, as a network partition would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.orderer import cluster_pb2
from google.protobuf.message import DecodeError

from heddle.common.tls import GRPC_OPTIONS

log = logging.getLogger(__name__)

STEP_METHOD = "/orderer.Cluster/Step"
QUEUE_LIMIT = 4096  # per remote; Raft tolerates loss, so a full queue drops
RECONNECT_DELAY = 0.3


def cert_der(pem_or_der: bytes) -> bytes:
    """A certificate's DER bytes (the pinning key), from PEM or DER."""
    data = bytes(pem_or_der)
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


class ClusterMember(Protocol):
    """What a channel's consensus chain offers the cluster service."""

    def sender_id(self, client_cert_der: bytes) -> int | None: ...

    def endpoint_of(self, node_id: int) -> str | None: ...

    def on_consensus(self, sender: int, payload: bytes) -> None: ...

    def on_submit(self, sender: int, request: cluster_pb2.SubmitRequest, reply: Callable) -> None: ...

    def on_submit_response(self, response: cluster_pb2.SubmitResponse) -> None: ...


class FaultInjector:
    """Reads the drop list from a JSON file (re-read at most every 100 ms), when enabled."""

    def __init__(self, path: Path | None):
        self.path = path if os.environ.get("HEDDLE_FAULT_INJECTION") == "1" else None
        self._checked = 0.0
        self._mtime = None
        self._drop: frozenset[str] = frozenset()

    def dropped(self, endpoint: str | None) -> bool:
        if self.path is None or endpoint is None:
            return False
        now = time.monotonic()
        if now - self._checked > 0.1:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    doc = json.loads(self.path.read_text()) if mtime is not None else {}
                    self._drop = frozenset(doc.get("drop", []))
                except (OSError, ValueError) as exc:
                    log.warning("fault injection file %s unreadable: %s", self.path, exc)
                    self._drop = frozenset()
                log.warning(
                    "cluster fault injection: dropping traffic with %s", sorted(self._drop) or "nobody"
                )
        return endpoint in self._drop


class ClusterService:
    """The server side of orderer.Cluster: authenticates senders and dispatches to chains."""

    def __init__(self, faults: FaultInjector):
        self.chains: dict[str, ClusterMember] = {}
        self.faults = faults
        self.rejected = 0  # counters for operators and tests
        self.dropped = 0

    def register(self, channel_id: str, chain: ClusterMember) -> None:
        self.chains[channel_id] = chain

    def unregister(self, channel_id: str, chain: ClusterMember) -> None:
        if self.chains.get(channel_id) is chain:
            del self.chains[channel_id]

    @staticmethod
    def _peer_cert(context) -> bytes | None:
        auth = context.auth_context() or {}
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            return None
        try:
            return cert_der(pems[0])
        except ValueError:
            return None

    async def step(self, requests, context) -> None:
        peer = context.peer()
        cert = self._peer_cert(context)
        if cert is None:
            self.rejected += 1
            log.warning("cluster: stream from %s presented no client certificate; refused", peer)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client TLS certificate is required")
        async for raw in requests:
            try:
                req = cluster_pb2.StepRequest.FromString(raw)
            except DecodeError as exc:
                self.dropped += 1
                log.warning("cluster: undecodable StepRequest from %s dropped: %s", peer, exc)
                continue
            kind = req.WhichOneof("payload")
            if kind == "consensus_request":
                channel_id = req.consensus_request.channel
            elif kind == "submit_request":
                channel_id = req.submit_request.channel
            else:
                self.dropped += 1
                log.warning("cluster: empty StepRequest from %s dropped", peer)
                continue
            chain = self.chains.get(channel_id)
            if chain is None:
                self.dropped += 1
                log.info("cluster: message for unknown channel %r from %s dropped", channel_id, peer)
                continue
            sender = chain.sender_id(cert)
            if sender is None:
                self.rejected += 1
                log.warning(
                    "cluster: %s presented a certificate that is not a consenter of channel %s; refused",
                    peer,
                    channel_id,
                )
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"certificate is not a consenter of channel {channel_id}",
                )
            if self.faults.dropped(chain.endpoint_of(sender)):
                continue
            if kind == "consensus_request":
                chain.on_consensus(sender, req.consensus_request.payload)
            else:

                def reply(resp: cluster_pb2.SubmitResponse) -> None:
                    msg = cluster_pb2.StepResponse(submit_res=resp)
                    asyncio.ensure_future(_write_quietly(context, msg))

                chain.on_submit(sender, req.submit_request, reply)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "orderer.Cluster",
            {
                "Step": grpc.stream_stream_rpc_method_handler(
                    self.step,
                    request_deserializer=None,
                    response_serializer=cluster_pb2.StepResponse.SerializeToString,
                )
            },
        )


async def _write_quietly(context, msg) -> None:
    try:
        await context.write(msg)
    except Exception as exc:  # the stream went away; the follower times out instead
        log.debug("cluster: cannot answer a submit: %s", exc)


class _Link:
    """One outbound Step stream to a remote consenter, reconnecting as needed."""

    def __init__(self, transport: ClusterTransport, endpoint: str):
        self.transport = transport
        self.endpoint = endpoint
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"cluster-{endpoint}")

    def send(self, request: bytes) -> None:
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            log.debug("cluster: queue to %s is full; message dropped", self.endpoint)

    async def _run(self) -> None:
        t = self.transport
        creds = grpc.ssl_channel_credentials(
            root_certificates=b"".join(t.root_pems) or None,
            private_key=t.client_key,
            certificate_chain=t.client_cert,
        )
        while True:
            try:
                async with grpc.aio.secure_channel(self.endpoint, creds, options=GRPC_OPTIONS) as chan:
                    call = chan.stream_stream(
                        STEP_METHOD,
                        request_serializer=None,
                        response_deserializer=cluster_pb2.StepResponse.FromString,
                    )()
                    reader = asyncio.ensure_future(self._read(call))
                    try:
                        while True:
                            raw = await self.queue.get()
                            if reader.done():
                                reader.result()  # raises the stream's error
                                raise ConnectionError("stream closed")
                            await call.write(raw)
                    finally:
                        reader.cancel()
                        call.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("cluster: stream to %s failed: %s", self.endpoint, exc)
            await asyncio.sleep(RECONNECT_DELAY)

    async def _read(self, call) -> None:
        async for resp in call:
            if resp.HasField("submit_res"):
                self.transport.on_submit_response(resp.submit_res)


class ClusterTransport:
    """Client side: sends StepRequests to consenters by endpoint (host:port)."""

    def __init__(self, client_cert: bytes, client_key: bytes, root_pems: list[bytes], faults: FaultInjector):
        self.client_cert = client_cert
        self.client_key = client_key
        self.client_cert_der = cert_der(client_cert)
        self.root_pems = list(root_pems)
        self.faults = faults
        self._links: dict[str, _Link] = {}
        self._submit_listeners: dict[str, Callable[[cluster_pb2.SubmitResponse], None]] = {}

    def add_roots(self, pems: list[bytes]) -> None:
        for p in pems:
            if p not in self.root_pems:
                self.root_pems.append(p)

    def send(self, endpoint: str, request: cluster_pb2.StepRequest) -> None:
        if self.faults.dropped(endpoint):
            return
        link = self._links.get(endpoint)
        if link is None:
            link = self._links[endpoint] = _Link(self, endpoint)
        link.send(request.SerializeToString())

    def listen_submit_responses(self, channel_id: str, fn: Callable | None) -> None:
        if fn is None:
            self._submit_listeners.pop(channel_id, None)
        else:
            self._submit_listeners[channel_id] = fn

    def on_submit_response(self, resp: cluster_pb2.SubmitResponse) -> None:
        fn = self._submit_listeners.get(resp.channel)
        if fn is not None:
            fn(resp)

    async def close(self) -> None:
        for link in self._links.values():
            link.task.cancel()
        for link in self._links.values():
            try:
                await link.task
            except (asyncio.CancelledError, Exception):
                pass
        self._links.clear()


class Cluster:
    """The per-process cluster context a Raft chain needs: transport, service and directories."""

    def __init__(
        self,
        transport: ClusterTransport,
        service: ClusterService,
        wal_dir: Path,
        snap_dir: Path,
        deliver_roots: list[bytes] | None = None,
    ):
        self.transport = transport
        self.service = service
        self.wal_dir = Path(wal_dir)
        self.snap_dir = Path(snap_dir)
        self.deliver_roots = deliver_roots or []
        from heddle.orderer.consensus.raft.catchup import pull_blocks

        self.pull = pull_blocks  # how a lagging or new node fetches blocks (Deliver); tests swap it
