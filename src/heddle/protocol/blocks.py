"""Block hashing and metadata, exactly as Fabric computes them.

- data hash: SHA-256 over the concatenation of the block's data entries;
- header hash: SHA-256 over DER SEQUENCE { INTEGER number, OCTET STRING previous_hash,
  OCTET STRING data_hash };
- the orderer signs ``metadata.value || signature_header || header_bytes``.
"""

from __future__ import annotations

from fabric_protos.common import common_pb2

from heddle.crypto.hashing import sha256

SIGNATURES = common_pb2.BlockMetadataIndex.SIGNATURES
LAST_CONFIG = common_pb2.BlockMetadataIndex.LAST_CONFIG
TRANSACTIONS_FILTER = common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER
ORDERER = common_pb2.BlockMetadataIndex.ORDERER
COMMIT_HASH = common_pb2.BlockMetadataIndex.COMMIT_HASH
METADATA_SLOTS = 5


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("block numbers are unsigned")
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")  # room for sign bit
    return b"\x02" + _der_length(len(body)) + body


def _der_octets(value: bytes) -> bytes:
    return b"\x04" + _der_length(len(value)) + value


def block_header_bytes(header: common_pb2.BlockHeader) -> bytes:
    """The ASN.1 DER encoding Fabric hashes and signs for a block header."""
    body = (
        _der_integer(header.number)
        + _der_octets(header.previous_hash)
        + _der_octets(header.data_hash)
    )
    return b"\x30" + _der_length(len(body)) + body


def block_header_hash(header: common_pb2.BlockHeader) -> bytes:
    return sha256(block_header_bytes(header))


def block_data_hash(data: common_pb2.BlockData) -> bytes:
    return sha256(*data.data)


def new_block(number: int, previous_hash: bytes, envelopes: list[bytes]) -> common_pb2.Block:
    """A block with its data and data hash set and empty metadata slots."""
    block = common_pb2.Block()
    block.header.number = number
    block.header.previous_hash = previous_hash
    block.data.data.extend(envelopes)
    block.header.data_hash = block_data_hash(block.data)
    block.metadata.metadata.extend([b""] * METADATA_SLOTS)
    return block


def get_metadata(block: common_pb2.Block, index: int) -> common_pb2.Metadata:
    md = common_pb2.Metadata()
    if len(block.metadata.metadata) > index and block.metadata.metadata[index]:
        md.ParseFromString(block.metadata.metadata[index])
    return md


def block_signature_message(
    block: common_pb2.Block, metadata_value: bytes, signature_header: bytes
) -> bytes:
    """The bytes an orderer signs for the SIGNATURES metadata slot."""
    return metadata_value + signature_header + block_header_bytes(block.header)


def last_config_index(block: common_pb2.Block) -> int:
    """The LAST_CONFIG index carried in the SIGNATURES slot (Fabric 2.x) or legacy slot."""
    md = get_metadata(block, SIGNATURES)
    if md.value:
        obm = common_pb2.OrdererBlockMetadata()
        obm.ParseFromString(md.value)
        if obm.HasField("last_config"):
            return obm.last_config.index
    legacy = get_metadata(block, LAST_CONFIG)
    if legacy.value:
        lc = common_pb2.LastConfig()
        lc.ParseFromString(legacy.value)
        return lc.index
    return 0


def transactions_filter(block: common_pb2.Block) -> bytes:
    if len(block.metadata.metadata) > TRANSACTIONS_FILTER:
        return block.metadata.metadata[TRANSACTIONS_FILTER]
    return b""
