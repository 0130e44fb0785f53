"""qscc: ledger queries (GetChainInfo, GetBlockByNumber, GetBlockByHash,
GetTransactionByID, GetBlockByTxID), allowed to the channel's Readers."""

from __future__ import annotations

from fabric_protos.common import ledger_pb2
from fabric_protos.peer import transaction_pb2

from heddle.chaincode.system.base import SccError
from heddle.ledger import BlockNotFound
from heddle.protocol import block_header_hash, transactions_filter

FUNCTIONS = ("GetChainInfo", "GetBlockByNumber", "GetBlockByHash", "GetTransactionByID", "GetBlockByTxID")


class Qscc:
    name = "qscc"

    def authorize(self, function: str, channel, proposal) -> None:
        if channel is None:
            raise SccError(400, f"qscc {function} needs a channel")
        try:
            channel.check_readers(proposal.creator, proposal.signed.proposal_bytes, proposal.signed.signature)
        except PermissionError as exc:
            raise SccError(403, f"access denied for [{function}][{channel.channel_id}]: {exc}") from exc

    def invoke(self, function: str, args: list[bytes], channel) -> bytes:
        if function not in FUNCTIONS:
            raise SccError(400, f"qscc: unknown function {function!r}; known: {', '.join(FUNCTIONS)}")
        if not args or args[0].decode(errors="replace") != channel.channel_id:
            raise SccError(400, f"qscc {function}: first argument must be the channel name")
        ledger = channel.ledger
        try:
            if function == "GetChainInfo":
                return self._chain_info(ledger).SerializeToString()
            if len(args) < 2:
                raise SccError(400, f"qscc {function}: missing argument")
            arg = args[1]
            if function == "GetBlockByNumber":
                try:
                    number = int(arg.decode())
                except ValueError as exc:
                    raise SccError(400, f"qscc GetBlockByNumber: {arg!r} is not a block number") from exc
                return ledger.blocks.get_by_number(number).SerializeToString()
            if function == "GetBlockByHash":
                return ledger.blocks.get_by_hash(arg).SerializeToString()
            txid = arg.decode(errors="replace")
            location = ledger.blocks.tx_location(txid)
            if location is None:
                raise SccError(
                    404, f"no such transaction ID [{txid}] in the ledger of channel {channel.channel_id}"
                )
            block = ledger.blocks.get_by_number(location[0])
            if function == "GetBlockByTxID":
                return block.SerializeToString()
            codes = transactions_filter(block)
            env = transaction_pb2.ProcessedTransaction(validationCode=codes[location[1]])
            env.transactionEnvelope.ParseFromString(block.data.data[location[1]])
            return env.SerializeToString()
        except (BlockNotFound, KeyError, LookupError) as exc:
            raise SccError(404, f"qscc {function}: {exc}") from exc

    @staticmethod
    def _chain_info(ledger) -> ledger_pb2.BlockchainInfo:
        last = ledger.blocks.last_block
        return ledger_pb2.BlockchainInfo(
            height=ledger.height,
            currentBlockHash=block_header_hash(last.header),
            previousBlockHash=last.header.previous_hash,
        )
