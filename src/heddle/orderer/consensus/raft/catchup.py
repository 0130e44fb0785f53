"""Pulling missing blocks from other orderers over Deliver, verifying their hash chain."""

from __future__ import annotations

import logging

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2

from heddle.common.tls import GRPC_OPTIONS, client_credentials
from heddle.peer.blockpuller import MAX_BLOCK, seek_envelope
from heddle.protocol import block_data_hash, block_header_hash

log = logging.getLogger(__name__)


class CatchUpError(Exception):
    """No orderer delivered the blocks needed, or what came back did not chain."""


async def pull_blocks(
    endpoints: list[str],
    roots: list[bytes],
    identity,
    channel_id: str,
    start: int,
    stop: int | None,
    prev_hash: bytes,
    client_key: bytes | None = None,
    client_cert: bytes | None = None,
    timeout: float = 20.0,
) -> list[common_pb2.Block]:
    """Blocks start..stop from the first endpoint that has them, chained onto ``prev_hash``;
    with ``stop=None``, whatever the first reachable endpoint has from ``start`` on."""
    errors = []
    for endpoint in endpoints:
        try:
            creds = client_credentials(roots, client_key, client_cert)
            async with grpc.aio.secure_channel(endpoint, creds, options=GRPC_OPTIONS) as chan:
                stub = chan.stream_stream(
                    "/orderer.AtomicBroadcast/Deliver",
                    request_serializer=common_pb2.Envelope.SerializeToString,
                    response_deserializer=ab_pb2.DeliverResponse.FromString,
                )
                last = MAX_BLOCK if stop is None else stop
                env = seek_envelope(identity, channel_id, start, last, ab_pb2.SeekInfo.FAIL_IF_NOT_READY)
                blocks: list[common_pb2.Block] = []
                expected_prev = prev_hash
                async for resp in stub(iter([env]), timeout=timeout):
                    if resp.WhichOneof("Type") != "block":
                        break
                    b = resp.block
                    if b.header.number != start + len(blocks):
                        raise CatchUpError(f"{endpoint} sent block {b.header.number} out of order")
                    if b.header.previous_hash != expected_prev:
                        raise CatchUpError(f"block {b.header.number} from {endpoint} does not chain")
                    if b.header.data_hash != block_data_hash(b.data):
                        raise CatchUpError(f"block {b.header.number} from {endpoint} has a bad data hash")
                    blocks.append(b)
                    expected_prev = block_header_hash(b.header)
                if stop is None or len(blocks) == stop - start + 1:
                    return blocks
                errors.append(f"{endpoint}: has only {len(blocks)} of {stop - start + 1} blocks")
        except (grpc.aio.AioRpcError, CatchUpError, OSError) as exc:
            errors.append(f"{endpoint}: {exc}")
    raise CatchUpError(f"cannot pull blocks {start}..{stop}: " + "; ".join(errors))
