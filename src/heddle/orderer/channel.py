"""One channel on an orderer: its ledger, configuration, message checks and block writing."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from fabric_protos.common import common_pb2, configtx_pb2

from heddle.channelconfig import ChannelConfig, ConfigError, parse_config_block, propose_config
from heddle.ledger import BlockStore
from heddle.orderer.blockcutter import BatchSize, message_size
from heddle.policy import PolicyError, SignedData
from heddle.protocol import (
    ParsedEnvelope,
    block_header_hash,
    compute_txid,
    last_config_index,
    make_channel_header,
    make_signature_header,
    new_block,
    sign_block,
)

log = logging.getLogger(__name__)

Status = common_pb2.Status
HeaderType = common_pb2.HeaderType


class BroadcastError(Exception):
    """A message refused at Broadcast, with the status Fabric's clients expect."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ChannelSupport:
    """State and checks for one channel; the consensus chain drives ``write_block``."""

    def __init__(self, channel_id: str, store: BlockStore, identity, pool: Executor):
        self.channel_id = channel_id
        self.store = store
        self.identity = identity
        self.pool = pool
        last = store.last_block
        if last is None:
            raise ValueError(f"channel {channel_id}: ledger is empty (join with a genesis block)")
        self.last_config = last_config_index(last) if last.header.number else 0
        self.config: ChannelConfig = parse_config_block(store.get_by_number(self.last_config))
        self._prev_hash = block_header_hash(last.header)
        self.height_changed = asyncio.Condition()

    # ----- configuration -----
    @property
    def batch_size(self) -> BatchSize:
        bs = self.config.orderer.batch_size
        return BatchSize(bs.max_message_count, bs.absolute_max_bytes, bs.preferred_max_bytes)

    @property
    def batch_timeout(self) -> float:
        return self.config.orderer.batch_timeout_s

    # ----- checks at Broadcast -----
    def _check_size(self, env: common_pb2.Envelope) -> int:
        size = message_size(env.payload, env.signature)
        limit = self.config.orderer.batch_size.absolute_max_bytes
        if size > limit:
            raise BroadcastError(
                Status.BAD_REQUEST,
                f"message payload is {size} bytes and exceeds maximum allowed {limit} bytes",
            )
        return size

    def _check_policy(self, parsed: ParsedEnvelope, path: str) -> None:
        if not parsed.envelope.signature:
            raise BroadcastError(Status.FORBIDDEN, "envelope is not signed")
        try:
            self.config.msp_manager.deserialize_identity(parsed.creator)
        except ValueError as exc:
            raise BroadcastError(Status.FORBIDDEN, f"creator is not valid: {exc}") from exc
        signed = [SignedData(parsed.envelope.payload, parsed.creator, parsed.envelope.signature)]
        try:
            self.config.policies.evaluate(path, signed)
        except PolicyError as exc:
            raise BroadcastError(Status.FORBIDDEN, f"access denied by policy {path}: {exc}") from exc

    def check_normal(self, parsed: ParsedEnvelope) -> int:
        """Size and Writers checks for a normal message; returns its size for the cutter."""
        size = self._check_size(parsed.envelope)
        self._check_policy(parsed, "/Channel/Writers")
        return size

    def check_deliver(self, parsed: ParsedEnvelope) -> None:
        self._check_policy(parsed, "/Channel/Readers")

    def process_config_update(self, parsed: ParsedEnvelope) -> tuple[bytes, int]:
        """Validate a CONFIG_UPDATE and wrap it into a CONFIG envelope signed by this orderer."""
        self._check_size(parsed.envelope)
        self._check_policy(parsed, "/Channel/Writers")
        try:
            config_env = propose_config(self.config, parsed.envelope)
        except ConfigError as exc:
            raise BroadcastError(Status.BAD_REQUEST, f"config update rejected: {exc}") from exc
        return self.wrap_config(config_env), self.config.sequence

    def wrap_config(self, config_env: configtx_pb2.ConfigEnvelope) -> bytes:
        shdr = make_signature_header(self.identity.serialized)
        chdr = make_channel_header(HeaderType.CONFIG, self.channel_id, compute_txid(shdr.nonce, shdr.creator))
        payload = common_pb2.Payload(
            header=common_pb2.Header(
                channel_header=chdr.SerializeToString(),
                signature_header=shdr.SerializeToString(),
            ),
            data=config_env.SerializeToString(),
        ).SerializeToString()
        return common_pb2.Envelope(payload=payload, signature=self.identity.sign(payload)).SerializeToString()

    # ----- block writing (called by the consensus chain, one writer at a time) -----
    def create_next_block(self, envelopes: list[bytes]) -> common_pb2.Block:
        return new_block(self.store.height, self._prev_hash, envelopes)

    def write_block(self, block: common_pb2.Block, is_config: bool, consenter_metadata=b"") -> None:
        """Sign and durably append a block; a config block becomes the channel's config."""
        if is_config:
            new_config = parse_config_block(block)
            self.last_config = block.header.number
        sign_block(
            block,
            self.identity.serialized,
            self.identity.sign,
            self.last_config,
            consenter_metadata,
        )
        self.store.append(block)
        self._prev_hash = block_header_hash(block.header)
        if is_config:
            self.config = new_config
            log.info(
                "channel %s: config sequence %d in block %d",
                self.channel_id,
                new_config.sequence,
                block.header.number,
            )

    async def notify_height(self) -> None:
        async with self.height_changed:
            self.height_changed.notify_all()
