"""gateway.Gateway on the peer: Evaluate, Endorse, Submit, CommitStatus, ChaincodeEvents.

Every RPC is a coroutine on the peer's event loop; blocking work (ledger reads, signature
checks, a synchronous in-process endorser) runs on threads, so requests proceed concurrently
and none waits behind another.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import chaincode_event_pb2, proposal_pb2, proposal_response_pb2, transaction_pb2
from google.protobuf.message import DecodeError

from heddle.common.tls import GRPC_OPTIONS, client_credentials
from heddle.peer.blockpuller import orderer_tls_roots
from heddle.peer.gateway.errors import GatewayError, NodeFailure, failure_code, invalid_argument, not_found
from heddle.peer.gateway.plan import (
    LIFECYCLE_ENDORSEMENT_POLICY,
    Layout,
    PlanError,
    application_policy_layouts,
    config_policy_layouts,
    feasible_layouts,
)
from heddle.protocol import (
    EndorsementMismatch,
    ParsedProposal,
    ProtocolError,
    create_signed_transaction,
    parse_endorser_transaction,
    parse_envelope,
    parse_signed_proposal,
    transactions_filter,
)

log = logging.getLogger(__name__)
Code = grpc.StatusCode
VALID = transaction_pb2.VALID

# Chaincodes every peer has; they have no chaincode definition on the channel.
SYSTEM_CHAINCODES = {"qscc", "cscc", "_lifecycle", "lscc"}


@dataclass(frozen=True)
class EndorserTarget:
    """A peer that can endorse: this peer (in-process) or another org's peer over gRPC."""

    address: str
    mspid: str
    local: bool = False
    tls_roots: tuple[bytes, ...] = ()


def _normal_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    if host in ("localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]", ""):
        host = "localhost"
    return f"{host.lower()}:{port}"


def _msp_tls_roots(msp_config) -> tuple[bytes, ...]:
    fmc = msp_config_pb2.FabricMSPConfig()
    try:
        fmc.ParseFromString(msp_config.config)
    except DecodeError:
        return ()
    return tuple(fmc.tls_root_certs) + tuple(fmc.tls_intermediate_certs)


def _response_ok(response: proposal_response_pb2.ProposalResponse) -> bool:
    return 200 <= response.response.status < 400


def _chaincode_failure(
    target: EndorserTarget, response: proposal_response_pb2.ProposalResponse
) -> NodeFailure:
    return NodeFailure(
        target.address,
        target.mspid,
        f"chaincode response {response.response.status}, {response.response.message}",
    )


def chaincode_events_in_block(
    block: common_pb2.Block, chaincode: str, after_transaction_id: str = ""
) -> list[chaincode_event_pb2.ChaincodeEvent]:
    """The events ``chaincode`` emitted in the valid transactions of ``block``, in block order;
    with ``after_transaction_id`` (if it is in the block) only those of later transactions."""
    codes = transactions_filter(block)
    out = []
    for i, raw in enumerate(block.data.data):
        try:
            env = parse_envelope(raw)
        except ProtocolError:
            continue
        if after_transaction_id and env.tx_id == after_transaction_id:
            out.clear()  # everything up to and including this transaction was seen
            continue
        if i >= len(codes) or codes[i] != VALID or env.header_type != common_pb2.ENDORSER_TRANSACTION:
            continue
        try:
            actions = parse_endorser_transaction(env.payload.data)
        except ProtocolError:
            continue
        for action in actions:
            if not action.chaincode_action.events:
                continue
            try:
                ev = chaincode_event_pb2.ChaincodeEvent.FromString(action.chaincode_action.events)
            except DecodeError:
                continue
            if ev.chaincode_id == chaincode:
                ev.tx_id = ev.tx_id or env.tx_id
                out.append(ev)
    return out


class _CommitWaiters:
    """Futures waiting for txids to commit on one channel, fed by a commit listener."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future]] = {}

    def on_commit(self, block: common_pb2.Block, results) -> None:
        if not self.waiting:
            return
        for result in results:
            futures = self.waiting.get(result.tx_id)
            if not futures:
                continue
            for fut in futures:
                if not fut.done():
                    fut.set_result((result.code, block.header.number))

    def add(self, txid: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(txid, []).append(fut)
        return fut

    def remove(self, txid: str, fut: asyncio.Future) -> None:
        futures = self.waiting.get(txid)
        if futures is None:
            return
        if fut in futures:
            futures.remove(fut)
        if not futures:
            del self.waiting[txid]


class _BroadcastStream:
    """One long-lived Broadcast stream to an orderer, shared by every Submit: the orderer
    answers a stream's envelopes in order, so each answer resolves the oldest waiter. A
    stream per envelope cost both the peer and the orderer more than the envelope itself."""

    def __init__(self, channel: grpc.aio.Channel, endpoint: str):
        self.endpoint = endpoint
        stub = channel.stream_stream(
            "/orderer.AtomicBroadcast/Broadcast",
            request_serializer=common_pb2.Envelope.SerializeToString,
            response_deserializer=ab_pb2.BroadcastResponse.FromString,
        )
        self._call = stub()
        self._waiting: deque[asyncio.Future] = deque()
        self._write_lock = asyncio.Lock()
        self.closed = False
        self._reader = asyncio.ensure_future(self._read())

    async def send(self, envelope: common_pb2.Envelope, timeout: float) -> ab_pb2.BroadcastResponse:
        fut = asyncio.get_running_loop().create_future()
        async with self._write_lock:
            if self.closed:
                raise StopAsyncIteration(f"broadcast stream to orderer {self.endpoint} is closed")
            self._waiting.append(fut)
            try:
                await self._call.write(envelope)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                self._fail(exc)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            fut.cancel()  # its answer, when it comes, is dropped; later ones still line up
            raise StopAsyncIteration(f"orderer {self.endpoint} did not answer within {timeout:g}s") from None

    async def _read(self) -> None:
        failure: BaseException | None = None
        try:
            while True:
                resp = await self._call.read()
                if resp is grpc.aio.EOF:
                    break
                if self._waiting:
                    fut = self._waiting.popleft()
                    if not fut.done():
                        fut.set_result(resp)
        except grpc.aio.AioRpcError as exc:
            failure = exc
        except asyncio.CancelledError:
            failure = StopAsyncIteration(f"broadcast stream to orderer {self.endpoint} was closed")
        self._fail(failure or StopAsyncIteration(f"orderer {self.endpoint} closed the broadcast stream"))

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, grpc.aio.AioRpcError | StopAsyncIteration):
            exc = StopAsyncIteration(f"broadcast to orderer {self.endpoint} failed: {exc}")
        self.closed = True
        waiting, self._waiting = self._waiting, deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)
        self._call.cancel()

    async def aclose(self, grace: float = 2.0) -> None:
        """Half-close, let the orderer answer what it has, then end the stream."""
        async with self._write_lock:
            self.closed = True
            with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                await self._call.done_writing()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._reader), grace)
        self._call.cancel()
        self._reader.cancel()


# how often, and after how long, a remote endorser that disagrees with this peer is asked again
LAGGING_PEER_RETRIES = 4
LAGGING_PEER_DELAY = 0.25


class Gateway:
    """The gateway.Gateway service of one peer node.

    ``node`` gives: ``channels`` (dict of PeerChannel), ``config`` (address, mspid, TLS and
    client TLS files), ``endorser`` (``process_async(signed_proposal_bytes)`` coroutine, or
    ``process(bytes)`` sync or async, or the gRPC-style ``process_proposal(raw, context)``).
    """

    def __init__(
        self,
        node,
        *,
        endorse_timeout: float = 30.0,
        broadcast_timeout: float = 30.0,
        endorse_threads: int = 16,
    ):
        self.node = node
        self.endorse_timeout = endorse_timeout
        self.broadcast_timeout = broadcast_timeout
        self._threads = ThreadPoolExecutor(max_workers=endorse_threads, thread_name_prefix="gateway")
        self._grpc_channels: dict[tuple[str, tuple[bytes, ...]], grpc.aio.Channel] = {}
        self._waiters: dict[str, _CommitWaiters] = {}
        self._plans: dict[tuple[str, str, int], list[Layout]] = {}
        self._broadcast_streams: dict[tuple[str, tuple[bytes, ...]], _BroadcastStream] = {}
        self._endorsers: dict[str, tuple[object, dict[str, list[EndorserTarget]]]] = {}
        self._orderers: dict[str, tuple[object, tuple[tuple[str, ...], tuple[bytes, ...]]]] = {}
        self._filters: dict[tuple[str, int], bytes] = {}  # TRANSACTIONS_FILTER of recent blocks

    # ----- lifecycle -----
    async def start(self) -> None:
        """Nothing to start: connections open on first use."""

    async def stop(self) -> None:
        streams, self._broadcast_streams = self._broadcast_streams, {}
        for stream in streams.values():
            await stream.aclose()
        channels, self._grpc_channels = self._grpc_channels, {}
        for chan in channels.values():
            await chan.close()
        for channel_id, waiters in self._waiters.items():
            channel = self.node.channels.get(channel_id)
            if channel is not None and waiters.on_commit in channel.commit_listeners:
                channel.commit_listeners.remove(waiters.on_commit)
        self._waiters.clear()
        self._threads.shutdown(wait=False)

    # ----- helpers -----
    @property
    def local_mspid(self) -> str:
        return self.node.config.mspid

    @property
    def local_address(self) -> str:
        return self.node.config.address

    def _channel(self, channel_id: str):
        if not channel_id:
            raise invalid_argument("a channel id is required")
        channel = self.node.channels.get(channel_id)
        if channel is None:
            raise not_found(f"channel {channel_id} not found on this peer")
        return channel

    async def _blocking(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def _client_tls(self) -> tuple[bytes | None, bytes | None]:
        cfg = self.node.config
        key, cert = getattr(cfg, "client_key", None), getattr(cfg, "client_cert", None)
        if key and cert:
            return key.read_bytes(), cert.read_bytes()
        return None, None

    def _grpc_channel(self, address: str, roots: tuple[bytes, ...]) -> grpc.aio.Channel:
        key = (address, roots)
        chan = self._grpc_channels.get(key)
        if chan is None:
            if self.node.config.tls.enabled:
                client_key, client_cert = self._client_tls()
                creds = client_credentials(list(roots), client_key, client_cert)
                chan = grpc.aio.secure_channel(address, creds, options=GRPC_OPTIONS)
            else:
                chan = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
            self._grpc_channels[key] = chan
        return chan

    def endorsers(self, channel) -> dict[str, list[EndorserTarget]]:
        """The channel's endorsing peers by MSP id: this peer first for its own org, then
        every org's anchor peers (other than this one). Worked out once per channel config
        (parsing every org's MSP config per request was a visible share of the gateway's CPU)."""
        config = channel.config
        cached = self._endorsers.get(channel.channel_id)
        if cached is not None and cached[0] is config:
            return cached[1]
        out = self._endorsers_of(channel)
        self._endorsers[channel.channel_id] = (config, out)
        return out

    def _endorsers_of(self, channel) -> dict[str, list[EndorserTarget]]:
        out: dict[str, list[EndorserTarget]] = {
            self.local_mspid: [EndorserTarget(self.local_address, self.local_mspid, local=True)]
        }
        app = channel.config.application
        if app is None:
            return out
        me = _normal_address(self.local_address)
        for org in app.orgs.values():
            roots = _msp_tls_roots(org.msp_config)
            for host, port in org.anchor_peers:
                address = f"{host}:{port}"
                if org.mspid == self.local_mspid and _normal_address(address) == me:
                    continue
                out.setdefault(org.mspid, []).append(EndorserTarget(address, org.mspid, False, roots))
        return out

    def orderer_endpoints(self, channel) -> list[str]:
        """The ordering service endpoints of the channel's config."""
        return list(self._ordering(channel)[0])

    def _ordering(self, channel) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
        """(endpoints, TLS roots) of the channel's ordering service, worked out once per
        channel config rather than per Submit (the roots mean parsing every orderer org's MSP)."""
        config = channel.config
        cached = self._orderers.get(channel.channel_id)
        if cached is not None and cached[0] is config:
            return cached[1]
        found = (tuple(config.orderer.addresses), tuple(orderer_tls_roots(channel)))
        self._orderers[channel.channel_id] = (config, found)
        return found

    def _parse_proposal(
        self, signed: proposal_pb2.SignedProposal, has: bool, channel_id: str
    ) -> ParsedProposal:
        if not has:
            raise invalid_argument("a proposed transaction is required")
        try:
            prop = parse_signed_proposal(signed)
        except ProtocolError as exc:
            raise invalid_argument(f"failed to unpack transaction proposal: {exc}") from exc
        if channel_id and channel_id != prop.channel_id:
            raise invalid_argument(
                f"request channel {channel_id} does not match the proposal's channel {prop.channel_id}"
            )
        return prop

    async def _definition_policy(self, channel, chaincode: str) -> tuple[bool, bytes | None]:
        """(known, validation_parameter) of a chaincode from _lifecycle; known is True when
        _lifecycle is not available, so the endorser decides."""
        try:
            from heddle.chaincode.lifecycle import committed_definition
        except ImportError:
            return True, None
        definition = await self._blocking(committed_definition, channel.ledger.state, chaincode)
        if definition is None:
            return False, None
        return True, getattr(definition, "validation_parameter", None) or None

    async def _layouts(self, channel, chaincode: str) -> list[Layout]:
        """The chaincode's endorsement layouts, cached until the channel's next block (a new
        definition or config can only arrive in one)."""
        key = (channel.channel_id, chaincode, channel.height)
        cached = self._plans.get(key)
        if cached is None:
            cached = await self._plan(channel, chaincode)
            if len(self._plans) > 1024:
                self._plans.clear()
            self._plans[key] = cached
        return cached

    async def _plan(self, channel, chaincode: str) -> list[Layout]:
        group = channel.config.config.channel_group
        try:
            if chaincode == "_lifecycle":
                return config_policy_layouts(group, LIFECYCLE_ENDORSEMENT_POLICY)
            if chaincode in SYSTEM_CHAINCODES:
                return [{self.local_mspid: 1}]
            known, parameter = await self._definition_policy(channel, chaincode)
            if not known:
                raise not_found(f"chaincode {chaincode} not found on channel {channel.channel_id}")
            return application_policy_layouts(parameter, group)
        except PlanError as exc:
            raise GatewayError(
                Code.FAILED_PRECONDITION, f"cannot plan endorsement for chaincode {chaincode}: {exc}"
            ) from exc

    async def _process(
        self, target: EndorserTarget, signed: bytes, timeout: float, parsed: ParsedProposal | None = None
    ) -> proposal_response_pb2.ProposalResponse | NodeFailure:
        """One endorser's ProposalResponse, or a NodeFailure if it could not be reached."""
        try:
            if target.local:
                return await self._process_local(signed, parsed)
            stub = self._grpc_channel(target.address, target.tls_roots).unary_unary(
                "/protos.Endorser/ProcessProposal",
                request_serializer=lambda b: b,
                response_deserializer=proposal_response_pb2.ProposalResponse.FromString,
            )
            return await stub(signed, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return NodeFailure(
                target.address, target.mspid, f"{exc.code().name}: {exc.details()}", exc.code()
            )
        except GatewayError:
            raise
        except Exception as exc:  # an endorser bug must not take the gateway down
            log.exception("endorser %s failed", target.address)
            return NodeFailure(target.address, target.mspid, f"endorser failed: {exc}")

    async def _process_local(
        self, signed: bytes, parsed: ParsedProposal | None = None
    ) -> proposal_response_pb2.ProposalResponse:
        endorser = getattr(self.node, "endorser", None)
        if endorser is None:
            raise GatewayError(Code.UNAVAILABLE, "this peer has no endorser")
        if parsed is not None and getattr(endorser, "accepts_parsed", False):
            return await endorser.process_async(parsed)  # decoded once, by the gateway
        process_async = getattr(endorser, "process_async", None)
        if process_async is not None:
            return await process_async(signed)
        process = getattr(endorser, "process", None)
        if process is not None:
            if inspect.iscoroutinefunction(process):
                return await process(signed)
            return await self._blocking(process, signed)
        return await endorser.process_proposal(signed, None)

    def _timeout(self, context, default: float) -> float:
        remaining = context.time_remaining() if context is not None else None
        return default if remaining is None else max(0.001, min(default, remaining))

    # ----- Evaluate -----
    async def evaluate(self, request: gateway_pb2.EvaluateRequest, context) -> gateway_pb2.EvaluateResponse:
        prop = self._parse_proposal(
            request.proposed_transaction, request.HasField("proposed_transaction"), request.channel_id
        )
        channel = self._channel(prop.channel_id)
        if prop.chaincode_name not in SYSTEM_CHAINCODES:
            known, _ = await self._definition_policy(channel, prop.chaincode_name)
            if not known:
                raise not_found(f"chaincode {prop.chaincode_name} not found on channel {prop.channel_id}")
        endorsers = self.endorsers(channel)
        orgs = list(dict.fromkeys(request.target_organizations)) or [self.local_mspid]
        candidates = [t for org in orgs for t in endorsers.get(org, [])]
        if not request.target_organizations:  # fall back to other orgs when our own org fails
            candidates += [t for org, ts in endorsers.items() if org != self.local_mspid for t in ts]
        if not candidates:
            raise GatewayError(
                Code.UNAVAILABLE,
                f"no peers available to evaluate chaincode {prop.chaincode_name} in organizations "
                f"{', '.join(orgs)}",
            )
        raw = prop.signed.SerializeToString()
        failures = []
        timeout = self._timeout(context, self.endorse_timeout)
        for target in candidates:
            result = await self._process(target, raw, timeout)
            if isinstance(result, NodeFailure):
                failures.append(result)
                continue
            if not _response_ok(result):
                failure = _chaincode_failure(target, result)
                raise GatewayError(
                    Code.ABORTED,
                    f"evaluate call to endorser returned error: {result.response.message}",
                    [failure],
                )
            return gateway_pb2.EvaluateResponse(result=result.response)
        raise GatewayError(
            failure_code(failures, False),
            "failed to evaluate transaction, see attached details for more info",
            failures,
        )

    # ----- Endorse -----
    async def endorse(self, request: gateway_pb2.EndorseRequest, context) -> gateway_pb2.EndorseResponse:
        prop = self._parse_proposal(
            request.proposed_transaction, request.HasField("proposed_transaction"), request.channel_id
        )
        channel = self._channel(prop.channel_id)
        endorsers = self.endorsers(channel)
        if request.endorsing_organizations:
            orgs = list(dict.fromkeys(request.endorsing_organizations))
            missing = [o for o in orgs if not endorsers.get(o)]
            if missing:
                raise GatewayError(
                    Code.UNAVAILABLE, f"no peers available for endorsing organizations {', '.join(missing)}"
                )
            layouts: list[Layout] = [dict.fromkeys(orgs, 1)]
        else:
            layouts = await self._layouts(channel, prop.chaincode_name)
            if prop.payload.TransientMap:
                layouts = self._local_only(layouts, prop.chaincode_name)
        available = {mspid: len(ts) for mspid, ts in endorsers.items()}
        plan = feasible_layouts(layouts, available, self.local_mspid)
        if not plan:
            needs = " or ".join("+".join(f"{n}x{m}" for m, n in sorted(lay.items())) for lay in layouts[:5])
            raise GatewayError(
                Code.UNAVAILABLE,
                f"no combination of peers can satisfy the endorsement policy of chaincode "
                f"{prop.chaincode_name}: it needs {needs or 'unsatisfiable principals'}; known peers: "
                + ", ".join(f"{m}: {n}" for m, n in sorted(available.items())),
            )
        responses = await self._collect(plan, endorsers, prop.signed.SerializeToString(), context, prop)
        try:
            envelope = create_signed_transaction(prop, responses, lambda _payload: b"")
        except EndorsementMismatch as exc:
            raise GatewayError(Code.ABORTED, f"failed to assemble transaction: {exc}") from exc
        except ProtocolError as exc:
            raise GatewayError(Code.ABORTED, f"failed to assemble transaction: {exc}") from exc
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    def _local_only(self, layouts: list[Layout], chaincode: str) -> list[Layout]:
        """Transient (private) data must not leave the client's chosen orgs: without explicit
        endorsing organizations it goes to this peer's org only."""
        local = [lay for lay in layouts if set(lay) == {self.local_mspid}]
        if not local:
            raise GatewayError(
                Code.FAILED_PRECONDITION,
                f"the proposal carries transient data and the endorsement policy of chaincode {chaincode} "
                f"needs organizations other than {self.local_mspid}; name the endorsing organizations "
                "that may see it",
            )
        return local

    async def _collect(
        self,
        plan: list[Layout],
        endorsers: dict[str, list[EndorserTarget]],
        raw: bytes,
        context,
        parsed: ParsedProposal | None = None,
    ) -> list[proposal_response_pb2.ProposalResponse]:
        """Endorsements filling the first layout whose peers all answer; chaincode errors and
        differing results end the attempt at once (they would recur on other peers)."""
        timeout = self._timeout(context, self.endorse_timeout)
        results: dict[str, proposal_response_pb2.ProposalResponse] = {}
        failures: dict[str, NodeFailure] = {}
        for layout in plan:
            chosen: list[EndorserTarget] = []
            for mspid, n in sorted(layout.items(), key=lambda kv: kv[0] != self.local_mspid):
                usable = [t for t in endorsers.get(mspid, []) if t.address not in failures]
                if len(usable) < n:
                    break
                chosen.extend(usable[:n])
            else:
                pending = [t for t in chosen if t.address not in results]
                for attempt in range(LAGGING_PEER_RETRIES + 1):
                    answers = await asyncio.gather(*(self._process(t, raw, timeout, parsed) for t in pending))
                    for target, answer in zip(pending, answers, strict=True):
                        if isinstance(answer, NodeFailure):
                            failures[target.address] = answer
                        else:
                            results[target.address] = answer
                    pending = self._lagging(chosen, results)
                    if not pending or attempt == LAGGING_PEER_RETRIES:
                        break
                    await asyncio.sleep(LAGGING_PEER_DELAY)
                errors = [
                    _chaincode_failure(t, results[t.address])
                    for t in chosen
                    if t.address in results and not _response_ok(results[t.address])
                ]
                if errors:
                    raise GatewayError(
                        Code.ABORTED,
                        "failed to endorse transaction, see attached details for more info",
                        errors,
                    )
                if all(t.address in results for t in chosen):
                    got = [results[t.address] for t in chosen]
                    if any(r.payload != got[0].payload for r in got):
                        raise GatewayError(
                            Code.ABORTED,
                            "failed to endorse transaction: endorsers returned different results "
                            "(ProposalResponsePayloads do not match)",
                            [NodeFailure(t.address, t.mspid, "endorsed a different result") for t in chosen],
                        )
                    return got
        raise GatewayError(
            failure_code(list(failures.values()), bool(results)),
            "failed to collect enough transaction endorsements, see attached details for more info",
            list(failures.values()),
        )

    def _lagging(
        self, chosen: list[EndorserTarget], results: dict[str, proposal_response_pb2.ProposalResponse]
    ) -> list[EndorserTarget]:
        """Other orgs' peers whose answer differs from this peer's good one. Without discovery's
        ledger heights, a peer a block behind (it has not yet committed what this peer just
        saw) is told apart from a real disagreement by asking it again shortly after."""
        local = next(
            (results[t.address] for t in chosen if t.mspid == self.local_mspid and t.address in results), None
        )
        if local is None or not _response_ok(local):
            return []
        return [
            t
            for t in chosen
            if t.mspid != self.local_mspid
            and t.address in results
            and (not _response_ok(results[t.address]) or results[t.address].payload != local.payload)
        ]

    # ----- Submit -----
    async def submit(self, request: gateway_pb2.SubmitRequest, context) -> gateway_pb2.SubmitResponse:
        if not request.HasField("prepared_transaction"):
            raise invalid_argument("a prepared transaction is required")
        envelope = request.prepared_transaction
        try:
            parsed = parse_envelope(envelope)
        except ProtocolError as exc:
            raise invalid_argument(f"failed to unpack prepared transaction: {exc}") from exc
        if not envelope.signature:
            raise invalid_argument("prepared transaction must be signed")
        if request.channel_id and request.channel_id != parsed.channel_id:
            raise invalid_argument(
                f"request channel {request.channel_id} does not match the transaction's channel "
                f"{parsed.channel_id}"
            )
        channel = self._channel(parsed.channel_id)
        endpoints = self.orderer_endpoints(channel)
        roots = self._ordering(channel)[1]
        if not endpoints:
            raise GatewayError(
                Code.UNAVAILABLE, f"no orderer endpoints in the config of channel {channel.channel_id}"
            )
        random.shuffle(endpoints)
        timeout = self._timeout(context, self.broadcast_timeout)
        failures = []
        for endpoint in endpoints:
            try:
                resp = await self._broadcast(endpoint, roots, envelope, timeout)
            except (grpc.aio.AioRpcError, StopAsyncIteration) as exc:
                message = (
                    f"{exc.code().name}: {exc.details()}"
                    if isinstance(exc, grpc.aio.AioRpcError)
                    else str(exc)
                )
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else Code.UNAVAILABLE
                failures.append(NodeFailure(endpoint, "", message, code))
                continue
            if resp.status != common_pb2.SUCCESS:
                status = common_pb2.Status.Name(resp.status)
                raise GatewayError(
                    Code.ABORTED,
                    f"received unsuccessful response from orderer: status={status}, info={resp.info}",
                    [NodeFailure(endpoint, "", f"status={status}, info={resp.info}")],
                )
            return gateway_pb2.SubmitResponse()
        raise GatewayError(
            failure_code(failures, False),
            "no orderers could be reached, see attached details for more info",
            failures,
        )

    async def _broadcast(
        self, endpoint: str, roots: tuple[bytes, ...], envelope: common_pb2.Envelope, timeout: float
    ) -> ab_pb2.BroadcastResponse:
        key = (endpoint, roots)
        stream = self._broadcast_streams.get(key)
        if stream is None or stream.closed:
            stream = _BroadcastStream(self._grpc_channel(endpoint, roots), endpoint)
            self._broadcast_streams[key] = stream
        return await stream.send(envelope, timeout)

    # ----- CommitStatus -----
    def _check_signed(self, channel, identity: bytes, request: bytes, signature: bytes) -> None:
        """The channel's Readers policy over the signed request (which verifies the signature);
        on refusal, say whether the identity, the signature or the policy was the problem."""
        try:
            channel.check_readers(identity, request, signature)
            return
        except PermissionError as exc:
            refusal = str(exc)
        try:
            creator = channel.config.msp_manager.deserialize_identity(identity)
        except Exception as exc:
            raise GatewayError(Code.PERMISSION_DENIED, f"request identity is invalid: {exc}") from exc
        try:
            creator.verify(request, signature)
        except Exception as exc:
            raise GatewayError(Code.PERMISSION_DENIED, f"request signature is invalid: {exc}") from exc
        raise GatewayError(Code.PERMISSION_DENIED, refusal)

    def _status_at(self, channel, block_num: int, tx_num: int) -> tuple[int, int]:
        """(validation code, block number) of transaction ``tx_num`` of block ``block_num``.
        Reads the block only if its TRANSACTIONS_FILTER was not recorded at commit (blocking:
        a 500-transaction block is megabytes to read and parse for one byte of its filter)."""
        key = (channel.channel_id, block_num)
        codes = self._filters.get(key)
        if codes is None:
            codes = bytes(transactions_filter(channel.block(block_num)))
            if len(self._filters) >= 64:
                self._filters.clear()
            self._filters[key] = codes
        code = codes[tx_num] if tx_num < len(codes) else transaction_pb2.NOT_VALIDATED
        return code, block_num

    def _remember_filter(self, channel_id: str, block: common_pb2.Block, results) -> None:
        if len(self._filters) >= 64:
            self._filters.clear()
        self._filters[(channel_id, block.header.number)] = bytes(r.code for r in results)

    def _waiters_for(self, channel) -> _CommitWaiters:
        waiters = self._waiters.get(channel.channel_id)
        if waiters is None:
            waiters = self._waiters[channel.channel_id] = _CommitWaiters()
            channel.commit_listeners.append(waiters.on_commit)
            channel.commit_listeners.append(partial(self._remember_filter, channel.channel_id))
        return waiters

    async def commit_status(
        self, signed: gateway_pb2.SignedCommitStatusRequest, context
    ) -> gateway_pb2.CommitStatusResponse:
        try:
            request = gateway_pb2.CommitStatusRequest.FromString(signed.request)
        except DecodeError as exc:
            raise invalid_argument(f"malformed commit status request: {exc}") from exc
        if not request.transaction_id:
            raise invalid_argument("a transaction id is required")
        channel = self._channel(request.channel_id)
        waiters = self._waiters_for(channel)
        fut = waiters.add(request.transaction_id)  # before the lookup, so no commit slips between
        try:
            # the signature check and the index lookup here, on the event loop: cheaper than a
            # trip to the thread pool and back; only reading an old block goes to the pool
            self._check_signed(channel, request.identity, signed.request, signed.signature)
            loc = channel.ledger.blocks.tx_location(request.transaction_id)
            if loc is not None:  # committed already
                if (channel.channel_id, loc[0]) in self._filters:
                    found = self._status_at(channel, *loc)
                else:
                    found = await self._blocking(self._status_at, channel, *loc)
                if not fut.done():
                    fut.set_result(found)
            code, block_number = await fut
        finally:
            waiters.remove(request.transaction_id, fut)
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block_number)

    # ----- ChaincodeEvents -----
    async def chaincode_events(self, signed: gateway_pb2.SignedChaincodeEventsRequest, context):
        try:
            request = gateway_pb2.ChaincodeEventsRequest.FromString(signed.request)
        except DecodeError as exc:
            raise invalid_argument(f"malformed chaincode events request: {exc}") from exc
        if not request.chaincode_id:
            raise invalid_argument("a chaincode id is required")
        channel = self._channel(request.channel_id)
        await self._blocking(self._check_signed, channel, request.identity, signed.request, signed.signature)
        number = self._start_block(channel, request)
        after = request.after_transaction_id
        while True:
            await self._wait_height(channel, number + 1)
            block = await self._blocking(channel.block, number)
            events = await self._blocking(chaincode_events_in_block, block, request.chaincode_id, after)
            after = ""  # only the start block is resumed within
            if events:
                yield gateway_pb2.ChaincodeEventsResponse(events=events, block_number=number)
            number += 1

    def _start_block(self, channel, request: gateway_pb2.ChaincodeEventsRequest) -> int:
        height = channel.height
        if not request.HasField("start_position"):
            return height
        kind = request.start_position.WhichOneof("Type")
        if kind == "specified":
            return request.start_position.specified.number
        if kind == "oldest":
            return 0
        if kind == "newest":
            return max(0, height - 1)
        if kind in (None, "next_commit"):
            return height
        raise invalid_argument(f"unsupported start position {kind}")

    async def _wait_height(self, channel, height: int) -> None:
        if channel.height >= height:
            return
        async with channel.height_changed:
            await channel.height_changed.wait_for(lambda: channel.height >= height)

    # ----- gRPC wiring -----
    @staticmethod
    async def _abort(context, method, exc: Exception) -> None:
        """End the call with the GatewayError's status, or INTERNAL for anything else (logged:
        it is a gateway bug). Called from an ``except`` block."""
        if not isinstance(exc, GatewayError):
            log.exception("gateway %s failed", method.__name__)
            exc = GatewayError(Code.INTERNAL, f"gateway error: {exc}")
        await exc.abort(context)

    def _unary(self, method):
        async def handle(request, context):
            try:
                return await method(request, context)
            except Exception as exc:  # CancelledError is not an Exception: it passes through
                await self._abort(context, method, exc)

        return handle

    def _stream(self, method):
        async def handle(request, context):
            try:
                async for item in method(request, context):
                    yield item
            except Exception as exc:
                await self._abort(context, method, exc)

        return handle

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler to add to the peer's grpc.aio server."""
        g = gateway_pb2
        return grpc.method_handlers_generic_handler(
            "gateway.Gateway",
            {
                "Evaluate": grpc.unary_unary_rpc_method_handler(
                    self._unary(self.evaluate),
                    g.EvaluateRequest.FromString,
                    g.EvaluateResponse.SerializeToString,
                ),
                "Endorse": grpc.unary_unary_rpc_method_handler(
                    self._unary(self.endorse),
                    g.EndorseRequest.FromString,
                    g.EndorseResponse.SerializeToString,
                ),
                "Submit": grpc.unary_unary_rpc_method_handler(
                    self._unary(self.submit), g.SubmitRequest.FromString, g.SubmitResponse.SerializeToString
                ),
                "CommitStatus": grpc.unary_unary_rpc_method_handler(
                    self._unary(self.commit_status),
                    g.SignedCommitStatusRequest.FromString,
                    g.CommitStatusResponse.SerializeToString,
                ),
                "ChaincodeEvents": grpc.unary_stream_rpc_method_handler(
                    self._stream(self.chaincode_events),
                    g.SignedChaincodeEventsRequest.FromString,
                    g.ChaincodeEventsResponse.SerializeToString,
                ),
            },
        )
