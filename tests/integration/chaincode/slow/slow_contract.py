"""A test contract whose one function takes as long as it is told: lets a test kill the
chaincode process while a transaction is in flight."""

import asyncio

from fabric_chaincode_python.fabric_contract_api import Contract, ContractChaincode, TransactionContext


class Slow(Contract):
    Name = "Slow"

    async def Sleep(self, ctx: TransactionContext, seconds: str) -> str:
        await asyncio.sleep(float(seconds))
        await ctx.get_stub().put_state("slept", seconds.encode())
        return seconds


if __name__ == "__main__":
    ContractChaincode.new_chaincode(Slow()).start()
