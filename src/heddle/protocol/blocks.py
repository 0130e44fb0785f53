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
TRANSACTIONS_FILTER_INDEX = TRANSACTIONS_FILTER
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
    body = _der_integer(header.number) + _der_octets(header.previous_hash) + _der_octets(header.data_hash)
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


def block_signature_message(block: common_pb2.Block, metadata_value: bytes, signature_header: bytes) -> bytes:
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


def sign_block(
    block: common_pb2.Block,
    creator: bytes,
    sign,
    last_config: int,
    consenter_metadata: bytes = b"",
    nonce: bytes | None = None,
) -> None:
    """Write the SIGNATURES slot: OrdererBlockMetadata (with LAST_CONFIG) signed by ``sign``.

    ``creator`` is the orderer's serialized identity and ``sign(message) -> bytes`` its signer.
    Fabric 2.x carries the last config index inside this slot, not in the legacy one.
    """
    from heddle.protocol.envelopes import new_nonce  # local: envelopes imports crypto only

    value = common_pb2.OrdererBlockMetadata(
        last_config=common_pb2.LastConfig(index=last_config),
        consenter_metadata=consenter_metadata,
    ).SerializeToString()
    sig_header = common_pb2.SignatureHeader(
        creator=creator, nonce=new_nonce() if nonce is None else nonce
    ).SerializeToString()
    signature = sign(block_signature_message(block, value, sig_header))
    md = common_pb2.Metadata(
        value=value,
        signatures=[common_pb2.MetadataSignature(signature_header=sig_header, signature=signature)],
    )
    while len(block.metadata.metadata) < METADATA_SLOTS:
        block.metadata.metadata.append(b"")
    block.metadata.metadata[SIGNATURES] = md.SerializeToString()


def block_signatures(block: common_pb2.Block) -> list[tuple[bytes, bytes, bytes]]:
    """(signed message, signer's serialized identity, signature) for each orderer signature."""
    md = get_metadata(block, SIGNATURES)
    header_bytes = block_header_bytes(block.header)
    out = []
    for ms in md.signatures:
        shdr = common_pb2.SignatureHeader()
        shdr.ParseFromString(ms.signature_header)
        creator = shdr.creator
        if not creator and ms.identifier_header:
            # BFT orderers identify the signer by consenter id instead; not used by heddle yet.
            creator = b""
        out.append((md.value + ms.signature_header + header_bytes, creator, ms.signature))
    return out
