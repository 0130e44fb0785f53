"""Raft consensus for one channel (``etcdraft``): a heddle.raft RawNode driven on one task.

The leader cuts blocks (BlockCutter) from messages it accepts or that followers forward,
proposes each serialized block as a Raft entry, and every consenter writes a block when
its entry commits. The entry's Raft index goes into the block's consenter metadata
(etcdraft ``BlockMetadata.raft_index``), so on restart or replay a block already in the
ledger is recognised and never written twice. Broadcast is acknowledged on the node that
accepted the message only once the block holding it is durably written there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.orderer import cluster_pb2
from fabric_protos.orderer.etcdraft import metadata_pb2

from heddle.channelconfig import parse_duration
from heddle.orderer.blockcutter import BlockCutter
from heddle.orderer.channel import BroadcastError, ChannelSupport
from heddle.orderer.consensus.raft.catchup import CatchUpError
from heddle.orderer.consensus.raft.transport import Cluster, cert_der
from heddle.peer.blockpuller import orderer_tls_roots
from heddle.protocol import (
    ParsedEnvelope,
    ProtocolError,
    block_header_hash,
    get_metadata,
    new_block,
    parse_envelope,
)
from heddle.protocol.blocks import SIGNATURES
from heddle.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryType,
    InvalidMessageError,
    ProposalDroppedError,
    RaftCodecError,
    RaftError,
    RawNode,
    Role,
    Snapshot,
    WalStorage,
    decode_message,
    encode_message,
)

log = logging.getLogger(__name__)
Status = common_pb2.Status

SUBMIT_TIMEOUT = 15.0  # how long Broadcast waits for its message's block before giving up
DEFAULT_TICK = 0.5
_SNAP = struct.Struct(">Q")


def raft_metadata(block: common_pb2.Block) -> metadata_pb2.BlockMetadata | None:
    """The etcdraft BlockMetadata in a block's consenter metadata, if any."""
    try:
        md = get_metadata(block, SIGNATURES)
        if not md.value:
            return None
        obm = common_pb2.OrdererBlockMetadata.FromString(md.value)
        if not obm.consenter_metadata:
            return None
        return metadata_pb2.BlockMetadata.FromString(obm.consenter_metadata)
    except Exception:
        return None


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _is_config_block(block: common_pb2.Block) -> bool:
    if len(block.data.data) != 1:
        return False
    try:
        return parse_envelope(block.data.data[0]).header_type == common_pb2.CONFIG
    except ProtocolError:
        return False


def block_message_digests(block: common_pb2.Block) -> list[bytes]:
    """Digests of what Broadcast callers wait on: each envelope; for a config block, the
    CONFIG_UPDATE it carries as last_update."""
    out = [_digest(d) for d in block.data.data]
    if _is_config_block(block):
        try:
            payload = common_pb2.Payload.FromString(
                common_pb2.Envelope.FromString(block.data.data[0]).payload
            )
            ce = configtx_pb2.ConfigEnvelope.FromString(payload.data)
            if ce.HasField("last_update"):
                out.append(_digest(ce.last_update.SerializeToString()))
        except Exception:
            pass
    return out


@dataclass
class _Pending:
    """A message accepted by the leader's cutter (local or forwarded)."""

    raw: bytes
    size: int


class RaftChain:
    """The Chain shape (order/configure/start/halt) over Raft."""

    def __init__(self, support: ChannelSupport, cluster: Cluster):
        self.support = support
        self.cluster = cluster
        self.channel_id = support.channel_id
        config = support.config
        opts = config.orderer.raft_options
        self.tick_interval = (
            parse_duration(opts.tick_interval) if opts and opts.tick_interval else DEFAULT_TICK
        )
        self.election_tick = (opts.election_tick if opts else 0) or 10
        self.heartbeat_tick = (opts.heartbeat_tick if opts else 0) or 1
        self.max_inflight = (opts.max_inflight_blocks if opts else 0) or 5
        self.snapshot_interval = (opts.snapshot_interval_size if opts else 0) or 16 * 1024 * 1024
        self.bootstrap_ids = list(range(1, len(self._genesis_consenters()) + 1))
        self.consenter_ids, self.next_id = self._load_ids()
        self.my_id = self._id_of(cluster.transport.client_cert_der)
        self.wal_dir = cluster.wal_dir / self.channel_id
        self.storage: WalStorage | None = None
        self.node: RawNode | None = None
        self._inbox: list[tuple] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._halted = False
        self._waiting: dict[bytes, list[asyncio.Future]] = {}
        # leader state
        self._is_leader = False
        self._leader_ready_index = 0  # leader cuts once applied reaches this (its first entry)
        self._cutter = BlockCutter(support.batch_size)
        self._cut_deadline: float | None = None
        self._held: list[tuple] = []  # messages waiting for the leader to be ready
        self._unproposed: list[tuple[list[bytes], bool]] = []  # (batch, is_config)
        self._tip: tuple[int, bytes] | None = None  # last block proposed: (number, header hash)
        self._config_in_flight = 0  # number of the config block awaiting commit, 0 if none
        self._config_pending = False  # a config block is queued or in flight
        self._bytes_since_snapshot = 0
        self._halt_scheduled = False
        self.status_note = "starting"

    # ----- consenters and ids -----
    def _genesis_consenters(self):
        from heddle.channelconfig import parse_config_block

        return parse_config_block(self.support.store.get_by_number(0)).orderer.consenters

    def _load_ids(self) -> tuple[list[int], int]:
        last = self.support.store.last_block
        md = raft_metadata(last) if last is not None else None
        if md is not None and md.consenter_ids:
            return list(md.consenter_ids), md.next_consenter_id
        n = len(self.support.config.orderer.consenters)
        return list(range(1, n + 1)), n + 1

    def _consenter_map(self) -> dict[int, object]:
        return dict(zip(self.consenter_ids, self.support.config.orderer.consenters, strict=False))

    def _id_of(self, der: bytes) -> int | None:
        for node_id, c in self._consenter_map().items():
            try:
                if cert_der(c.client_tls_cert) == der:
                    return node_id
            except ValueError:
                continue
        return None

    def sender_id(self, client_cert_der: bytes) -> int | None:
        return self._id_of(client_cert_der)

    def endpoint_of(self, node_id: int) -> str | None:
        c = self._consenter_map().get(node_id)
        return c.endpoint if c is not None else None

    # ----- lifecycle -----
    def start(self) -> None:
        self.cluster.transport.add_roots(orderer_tls_roots(self.support))
        self.cluster.service.register(self.channel_id, self)
        self.cluster.transport.listen_submit_responses(self.channel_id, self.on_submit_response)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"raft-{self.channel_id}")
        self._ticker = loop.create_task(self._tick_loop(), name=f"raft-tick-{self.channel_id}")

    async def halt(self) -> None:
        self._halted = True
        self.cluster.service.unregister(self.channel_id, self)
        self.cluster.transport.listen_submit_responses(self.channel_id, None)
        for t in (self._ticker, self._task):
            if t is not None:
                t.cancel()
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
        self._fail_all(BroadcastError(Status.SERVICE_UNAVAILABLE, "orderer is shutting down"))
        if self.storage is not None:
            self.storage.close()

    def erase(self) -> None:
        """Remove this channel's WAL and snapshots (the channel was removed)."""
        shutil.rmtree(self.wal_dir, ignore_errors=True)

    def status(self) -> dict:
        node = self.node
        if node is None:
            return {"id": self.my_id, "state": self.status_note}
        return {
            "id": node.id,
            "state": self.status_note,
            "leader": node.leader,
            "term": node.term,
            "role": node.role.name.lower(),
            "applied": node.applied,
            "committed": node.committed,
            "voters": list(node.conf_state.voters),
            "consenterIds": list(self.consenter_ids),
        }

    # ----- Broadcast side -----
    def _register(self, raw: bytes) -> asyncio.Future:
        if self._halted:
            raise BroadcastError(Status.SERVICE_UNAVAILABLE, "channel is halted")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        key = _digest(raw)
        self._waiting.setdefault(key, []).append(fut)

        def expire() -> None:
            if not fut.done():
                fut.set_exception(
                    BroadcastError(Status.SERVICE_UNAVAILABLE, "timed out waiting for the message's block")
                )
            self._forget(key, fut)

        handle = loop.call_later(SUBMIT_TIMEOUT, expire)
        fut.add_done_callback(lambda _f: handle.cancel())
        return fut

    def _forget(self, key: bytes, fut: asyncio.Future) -> None:
        lst = self._waiting.get(key)
        if lst and fut in lst:
            lst.remove(fut)
            if not lst:
                del self._waiting[key]

    def order(self, parsed: ParsedEnvelope, raw: bytes, size: int) -> asyncio.Future:
        """Queue a checked normal message; resolves to its block number once written here."""
        fut = self._register(raw)
        self._post(("local", raw, size, False, self.support.config.sequence, parsed))
        return fut

    def configure(self, parsed: ParsedEnvelope) -> asyncio.Future:
        raw = parsed.envelope.SerializeToString()
        fut = self._register(raw)
        self._post(("local", raw, 0, True, self.support.config.sequence, parsed))
        return fut

    def _fail(self, raw: bytes, exc: BroadcastError) -> None:
        for fut in self._waiting.pop(_digest(raw), []):
            if not fut.done():
                fut.set_exception(exc)

    def _fail_all(self, exc: BroadcastError) -> None:
        waiting, self._waiting = self._waiting, {}
        for lst in waiting.values():
            for fut in lst:
                if not fut.done():
                    fut.set_exception(exc)

    # ----- cluster side -----
    def on_consensus(self, sender: int, payload: bytes) -> None:
        self._post(("raft", sender, payload))

    def on_submit(self, sender: int, request: cluster_pb2.SubmitRequest, reply: Callable) -> None:
        self._post(("forwarded", sender, request, reply))

    def on_submit_response(self, resp: cluster_pb2.SubmitResponse) -> None:
        # info is "<sha256 hex>: reason"; fail the local waiters of that message
        key_hex, _, reason = resp.info.partition(": ")
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            log.warning("channel %s: leader refused a forwarded message: %s", self.channel_id, resp.info)
            return
        for fut in self._waiting.pop(key, []):
            if not fut.done():
                fut.set_exception(BroadcastError(resp.status, reason))

    def _post(self, item: tuple) -> None:
        self._inbox.append(item)
        self._wake.set()

    # ----- the loop -----
    async def _tick_loop(self) -> None:
        while not self._halted:
            await asyncio.sleep(self.tick_interval)
            # no ticks pile up while onboarding or catching up; one pending tick is enough
            if self.status_note in ("running", "evicted") and ("tick",) not in self._inbox:
                self._post(("tick",))

    def _open_node(self) -> None:
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.storage = WalStorage(self.wal_dir)
        last = self.support.store.last_block
        md = raft_metadata(last) if last is not None else None
        applied = md.raft_index if md is not None else 0
        applied = max(applied, self.storage.snapshot().index)
        applied = min(applied, self.storage.hard_state.commit)
        cfg = Config(
            id=self.my_id,
            peers=self.bootstrap_ids,
            election_tick=self.election_tick,
            heartbeat_tick=self.heartbeat_tick,
            max_inflight_msgs=self.max_inflight,
            applied=applied,
            pre_vote=True,
            check_quorum=True,
        )
        self.node = RawNode(cfg, self.storage)
        log.warning(
            "channel %s: raft node %d started (term %d, applied %d, height %d, consenters %s)",
            self.channel_id,
            self.my_id,
            self.node.term,
            applied,
            self.support.store.height,
            self.consenter_ids,
        )

    async def _onboard(self) -> None:
        """Not (yet) a consenter: pull blocks until a config block adds this orderer."""
        self.status_note = "onboarding"
        log.warning(
            "channel %s: this orderer is not a consenter at height %d; pulling blocks until it is added",
            self.channel_id,
            self.support.store.height,
        )
        delay = 0.2
        while self.my_id is None:
            written = await self._pull_and_write(None)
            self.my_id = self._id_of(self.cluster.transport.client_cert_der)
            if not written:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        log.warning("channel %s: added to the consenters as raft node %d", self.channel_id, self.my_id)

    async def _run(self) -> None:
        try:
            if self.my_id is None:
                await self._onboard()
            self._open_node()
            snap = self.storage.snapshot()
            if not snap.is_empty():
                await self._catch_up_to(_SNAP.unpack(snap.data)[0])
            self.status_note = "running"
            loop = asyncio.get_running_loop()
            while not self._halted:
                timeout = None
                if self._cut_deadline is not None:
                    timeout = max(0.0, self._cut_deadline - loop.time())
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                self._wake.clear()
                inbox, self._inbox = self._inbox, []
                for item in inbox:
                    try:
                        self._handle(item)
                    except RaftError as exc:  # one bad input must not stop the channel
                        log.error("channel %s: %s input refused by raft: %s", self.channel_id, item[0], exc)
                if self._cut_deadline is not None and loop.time() >= self._cut_deadline:
                    self._cut_deadline = None
                    batch = self._cutter.cut()
                    if batch:
                        self._queue_batch(batch, False)
                self._propose_queued()
                await self._process_ready()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("channel %s: raft chain failed; halting", self.channel_id)
            self._halted = True
            self.status_note = "failed"
            self._fail_all(BroadcastError(Status.SERVICE_UNAVAILABLE, "consensus failed on this orderer"))

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        node = self.node
        if kind == "tick":
            node.tick()
        elif kind == "raft":
            _, sender, payload = item
            if sender is None or self.endpoint_of(sender) is None:
                log.warning("channel %s: raft message from a non-consenter dropped", self.channel_id)
                return
            try:
                m = decode_message(payload)
            except RaftCodecError as exc:
                log.warning(
                    "channel %s: malformed raft message from node %s dropped: %s",
                    self.channel_id,
                    sender,
                    exc,
                )
                return
            if m.frm != sender:
                log.warning(
                    "channel %s: raft message claiming node %s from node %s dropped",
                    self.channel_id,
                    m.frm,
                    sender,
                )
                return
            try:
                node.step(m)
            except InvalidMessageError as exc:
                log.warning("channel %s: raft message from node %s dropped: %s", self.channel_id, sender, exc)
        elif kind == "local":
            _, raw, size, is_config, seq, parsed = item
            self._submit(raw, size, is_config, seq, parsed, None)
        elif kind == "forwarded":
            _, sender, req, reply = item
            raw = req.payload.SerializeToString()
            try:
                parsed = parse_envelope(raw)
            except ProtocolError as exc:
                reply(self._refusal(raw, BroadcastError(Status.BAD_REQUEST, str(exc))))
                return
            is_config = parsed.header_type == common_pb2.CONFIG_UPDATE
            size = len(req.payload.payload) + len(req.payload.signature)
            self._submit(raw, size, is_config, req.last_validation_seq, parsed, reply)

    def _refusal(self, raw: bytes, exc: BroadcastError) -> cluster_pb2.SubmitResponse:
        return cluster_pb2.SubmitResponse(
            channel=self.channel_id, status=exc.status, info=f"{_digest(raw).hex()}: {exc.message}"
        )

    def _submit(self, raw, size, is_config, seq, parsed, reply) -> None:
        """A message to order: cut it here if leading, else forward it to the leader."""
        node = self.node
        if self.status_note == "evicted":
            exc = BroadcastError(Status.SERVICE_UNAVAILABLE, "this orderer is no longer a consenter")
            if reply is not None:
                reply(self._refusal(raw, exc))
            else:
                self._fail(raw, exc)
            return
        if self._is_leader:
            if not self._leader_ready():
                self._held.append((raw, size, is_config, seq, parsed, reply))
                return
            self._cut(raw, size, is_config, seq, parsed, reply)
            return
        if reply is not None:  # forwarded to us, but we do not lead (any more)
            reply(self._refusal(raw, BroadcastError(Status.SERVICE_UNAVAILABLE, "not the leader")))
            return
        leader = node.leader
        endpoint = self.endpoint_of(leader) if leader else None
        if endpoint is None:
            self._fail(raw, BroadcastError(Status.SERVICE_UNAVAILABLE, "no Raft leader is known; retry"))
            return
        req = cluster_pb2.StepRequest(
            submit_request=cluster_pb2.SubmitRequest(
                channel=self.channel_id,
                last_validation_seq=seq,
                payload=common_pb2.Envelope.FromString(raw),
            )
        )
        self.cluster.transport.send(endpoint, req)

    def _leader_ready(self) -> bool:
        return self.node.applied >= self._leader_ready_index and not self._config_pending

    def _cut(self, raw, size, is_config, seq, parsed, reply) -> None:
        support = self.support

        def refuse(exc: BroadcastError) -> None:
            if reply is not None:
                reply(self._refusal(raw, exc))
            else:
                self._fail(raw, exc)

        if is_config:
            try:
                wrapped, _ = support.process_config_update(parsed)
                self._check_consenter_change(wrapped)
            except BroadcastError as exc:
                refuse(exc)
                return
            batch = self._cutter.cut()
            self._cut_deadline = None
            if batch:
                self._queue_batch(batch, False)
            self._queue_batch([wrapped], True)
            self._config_pending = True  # hold everything else until this config block is written
            return
        if seq != support.config.sequence:
            try:
                size = support.check_normal(parsed)
            except BroadcastError as exc:
                refuse(exc)
                return
        result = self._cutter.ordered(raw, size)
        for batch in result.batches:
            self._queue_batch(batch, False)
        loop = asyncio.get_running_loop()
        if result.pending and self._cut_deadline is None:
            self._cut_deadline = loop.time() + support.batch_timeout
        elif not result.pending:
            self._cut_deadline = None

    def _check_consenter_change(self, wrapped: bytes) -> None:
        """Refuse a config update that changes more than one consenter at a time."""
        from heddle.channelconfig import parse_config_block

        new = parse_config_block(new_block(self.support.store.height, b"", [wrapped]))
        if new.orderer is None or new.orderer.consensus_type != "etcdraft":
            raise BroadcastError(
                Status.BAD_REQUEST, "changing the consensus type of a Raft channel is not supported"
            )
        old = {cert_der(c.client_tls_cert) for c in self.support.config.orderer.consenters}
        cur = {cert_der(c.client_tls_cert) for c in new.orderer.consenters}
        if len(old ^ cur) > 1:
            raise BroadcastError(
                Status.BAD_REQUEST, "a config update may add or remove at most one consenter at a time"
            )

    def _queue_batch(self, batch: list[bytes], is_config: bool) -> None:
        self._unproposed.append((batch, is_config))

    def _propose_queued(self) -> None:
        if not self._is_leader:
            return
        node = self.node
        while self._unproposed and not self._config_in_flight:
            if self._tip is None:
                self._tip = (
                    self.support.store.height - 1,
                    block_header_hash(self.support.store.last_block.header),
                )
            in_flight = self._tip[0] - (self.support.store.height - 1)
            if in_flight >= self.max_inflight:
                return
            batch, is_config = self._unproposed.pop(0)
            number, prev = self._tip
            block = new_block(number + 1, prev, batch)
            try:
                node.propose(block.SerializeToString())
            except ProposalDroppedError as exc:
                log.info("channel %s: proposal of block %d dropped: %s", self.channel_id, number + 1, exc)
                for raw in batch:
                    self._fail(raw, BroadcastError(Status.SERVICE_UNAVAILABLE, f"proposal dropped: {exc}"))
                if is_config:
                    self._config_pending = False
                continue
            self._tip = (number + 1, block_header_hash(block.header))
            if is_config:
                self._config_in_flight = number + 1
        if not self._unproposed and self._leader_ready() and self._held:
            held, self._held = self._held, []
            for i, h in enumerate(held):
                if not self._leader_ready():
                    # a config update just cut holds the rest until its block is written:
                    # they must be checked against the config it produces
                    self._held = held[i:] + self._held
                    break
                self._cut(*h)
            self._propose_queued()

    async def _process_ready(self) -> None:
        node = self.node
        loop = asyncio.get_running_loop()
        while node.has_ready():
            rd = node.ready()
            if rd.must_sync:
                await loop.run_in_executor(None, self.storage.save, rd.hard_state, rd.entries, rd.snapshot)
            for m in rd.messages:
                endpoint = self.endpoint_of(m.to)
                if endpoint is None:
                    continue
                req = cluster_pb2.StepRequest(
                    consensus_request=cluster_pb2.ConsensusRequest(
                        channel=self.channel_id, payload=encode_message(m)
                    )
                )
                self.cluster.transport.send(endpoint, req)
            if rd.snapshot is not None and not rd.snapshot.is_empty():
                await self._install_snapshot(rd.snapshot)
            for e in rd.committed_entries:
                if e.type == EntryType.NORMAL and e.data:
                    await self._apply_block(e.index, e.data)
                elif e.type == EntryType.CONF_CHANGE:
                    log.warning(
                        "channel %s: raft configuration change at index %d applied", self.channel_id, e.index
                    )
            node.advance(rd)
            self._on_soft_state()
            if rd.committed_entries:
                self._maybe_snapshot()
                self._reconcile_membership()
                if self.status_note == "evicted" and self.my_id not in node.conf_state.voters:
                    self._halt_soon()
            self._propose_queued()

    def _on_soft_state(self) -> None:
        node = self.node
        leading = node.role == Role.LEADER
        if leading and not self._is_leader:
            self._is_leader = True
            self._leader_ready_index = node.raft.log.last_index()
            self._tip = None
            self._config_in_flight = 0
            self._config_pending = False
            self._cutter = BlockCutter(self.support.batch_size)
            log.warning(
                "channel %s: raft node %d is the leader in term %d", self.channel_id, node.id, node.term
            )
        elif not leading and self._is_leader:
            self._is_leader = False
            log.warning(
                "channel %s: raft node %d stepped down (term %d, leader %d)",
                self.channel_id,
                node.id,
                node.term,
                node.leader,
            )
            if self.status_note == "evicted":
                self._halt_soon()
            exc = BroadcastError(Status.SERVICE_UNAVAILABLE, "leadership changed; retry")
            for raw in self._cutter.cut():
                self._fail(raw, exc)
            for batch, _ in self._unproposed:
                for raw in batch:
                    self._fail(raw, exc)
            for h in self._held:
                if h[5] is not None:
                    h[5](self._refusal(h[0], exc))
                else:
                    self._fail(h[0], exc)
            self._unproposed, self._held, self._cut_deadline = [], [], None
            self._tip = None
            self._config_in_flight = 0
            self._config_pending = False

    # ----- applying -----
    async def _apply_block(self, index: int, data: bytes) -> None:
        support = self.support
        block = common_pb2.Block.FromString(data)
        number = block.header.number
        height = support.store.height
        if number < height:
            stored = raft_metadata(support.store.get_by_number(number))
            if stored is not None and stored.raft_index != index:
                log.warning(
                    "channel %s: entry %d carries block %d already written from entry %d; skipped",
                    self.channel_id,
                    index,
                    number,
                    stored.raft_index,
                )
            return
        if number > height:
            await self._catch_up_to(number - 1)
        if block.header.previous_hash != block_header_hash(support.store.last_block.header):
            log.error(
                "channel %s: entry %d: block %d does not chain onto the ledger; skipped",
                self.channel_id,
                index,
                number,
            )
            return
        is_config = _is_config_block(block)
        if is_config:
            self._update_ids_for_config(block)
        md = metadata_pb2.BlockMetadata(
            consenter_ids=self.consenter_ids, next_consenter_id=self.next_id, raft_index=index
        )
        await self._write(block, is_config, md.SerializeToString())
        self._bytes_since_snapshot += len(data)
        if is_config and self._config_in_flight == number:
            self._config_in_flight = 0
            self._config_pending = False
        if is_config:
            self._cutter = BlockCutter(support.batch_size)

    def _update_ids_for_config(self, block: common_pb2.Block) -> None:
        from heddle.channelconfig import parse_config_block

        new = parse_config_block(block).orderer
        old = {cert_der(c.client_tls_cert): i for i, c in self._consenter_map().items()}
        ids = []
        for c in new.consenters:
            der = cert_der(c.client_tls_cert)
            if der in old:
                ids.append(old[der])
            else:
                ids.append(self.next_id)
                log.warning(
                    "channel %s: consenter %s joins as raft node %d",
                    self.channel_id,
                    c.endpoint,
                    self.next_id,
                )
                self.next_id += 1
        self.consenter_ids = ids

    async def _write(
        self, block: common_pb2.Block, is_config: bool, consenter_metadata: bytes, pulled: bool = False
    ) -> None:
        support = self.support
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, support.write_block, block, is_config, consenter_metadata)
        number = block.header.number
        for key in block_message_digests(block):
            for fut in self._waiting.pop(key, []):
                if not fut.done():
                    fut.set_result(number)
        await support.notify_height()
        if is_config and not pulled and self.my_id not in self.consenter_ids:
            self.status_note = "evicted"
            if self._is_leader:
                # stay until Raft has removed this node: the leader proposes its own removal,
                # which hands leadership to another voter
                log.warning("channel %s: this orderer (the leader) is no longer a consenter", self.channel_id)
            else:
                log.warning(
                    "channel %s: this orderer is no longer a consenter; halting the chain", self.channel_id
                )
                self._halted = True

    def _halt_soon(self) -> None:
        """Removed from Raft: keep running one election timeout (to hand over leadership), then stop."""
        if self._halt_scheduled:
            return
        self._halt_scheduled = True
        log.warning("channel %s: removed from the Raft cluster; halting the chain", self.channel_id)

        def stop() -> None:
            self._halted = True
            self._wake.set()

        asyncio.get_running_loop().call_later(self.tick_interval * self.election_tick, stop)

    def _reconcile_membership(self) -> None:
        """The leader turns consenter-set changes into Raft conf changes, one at a time."""
        node = self.node
        if not self._is_leader or node.raft.pending_conf_index > node.applied:
            return
        voters = set(node.conf_state.voters) | set(node.conf_state.learners)
        wanted = set(self.consenter_ids)
        change = None
        if wanted - voters:
            change = ConfChange(ConfChangeType.ADD_NODE, min(wanted - voters))
        elif voters - wanted:
            change = ConfChange(ConfChangeType.REMOVE_NODE, min(voters - wanted))
        if change is None:
            return
        try:
            node.propose_conf_change(change)
            log.warning(
                "channel %s: proposing raft %s of node %d", self.channel_id, change.type.name, change.node_id
            )
        except ProposalDroppedError as exc:
            log.info("channel %s: conf change not proposed yet: %s", self.channel_id, exc)

    def _maybe_snapshot(self) -> None:
        if self._bytes_since_snapshot < self.snapshot_interval:
            return
        node = self.node
        index = node.applied
        if index <= self.storage.snapshot().index:
            return
        height = self.support.store.height
        self.storage.create_snapshot(index, node.conf_state, _SNAP.pack(height - 1))
        self.storage.compact(index)
        self._bytes_since_snapshot = 0
        log.info("channel %s: raft snapshot at index %d (block %d)", self.channel_id, index, height - 1)

    async def _install_snapshot(self, snap: Snapshot) -> None:
        number = _SNAP.unpack(snap.data)[0]
        log.warning(
            "channel %s: installing raft snapshot at index %d (block %d; height %d)",
            self.channel_id,
            snap.index,
            number,
            self.support.store.height,
        )
        await self._catch_up_to(number)

    async def _catch_up_to(self, number: int) -> None:
        """Pull and write blocks up to ``number`` from other orderers (Deliver)."""
        delay = 0.2
        while self.support.store.height <= number:
            if not await self._pull_and_write(number):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)

    async def _pull_and_write(self, number: int | None) -> int:
        """One pull of blocks height..number (None: all available); how many were written."""
        support = self.support
        start = support.store.height
        endpoints = list(support.config.orderer.addresses)
        try:
            blocks = await self.cluster.pull(
                endpoints,
                self.cluster.deliver_roots or orderer_tls_roots(support),
                support.identity,
                self.channel_id,
                start,
                number,
                block_header_hash(support.store.last_block.header),
            )
        except CatchUpError as exc:
            log.warning("channel %s: catching up: %s", self.channel_id, exc)
            return 0
        if blocks:
            for b in blocks:
                md = raft_metadata(b)
                is_config = _is_config_block(b)
                if md is not None and md.consenter_ids:
                    self.consenter_ids, self.next_id = list(md.consenter_ids), md.next_consenter_id
                elif is_config:
                    self._update_ids_for_config(b)
                meta = md.SerializeToString() if md is not None else b""
                del b.metadata.metadata[:]
                await self._write(b, is_config, meta, pulled=True)
            log.warning("channel %s: pulled blocks %d..%d", self.channel_id, start, start + len(blocks) - 1)
        return len(blocks)
