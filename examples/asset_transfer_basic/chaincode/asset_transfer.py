"""asset-transfer-basic as a Python contract: the functions and JSON asset shape of
Hyperledger Fabric's sample, so its applications work unchanged.

Run by the peer as a chaincode server (CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS set).
"""

import json

from fabric_chaincode_python.fabric_contract_api import Contract, ContractChaincode, TransactionContext

SAMPLE_ASSETS = [
    ("asset1", "blue", 5, "Tomoko", 300),
    ("asset2", "red", 5, "Brad", 400),
    ("asset3", "green", 10, "Jin Soo", 500),
    ("asset4", "yellow", 10, "Max", 600),
    ("asset5", "black", 15, "Adriana", 700),
    ("asset6", "white", 15, "Michel", 800),
]


def asset(id: str, color: str, size: int, owner: str, appraised_value: int) -> dict:
    return {"ID": id, "Color": color, "Size": size, "Owner": owner, "AppraisedValue": appraised_value}


def to_json(value) -> str:
    # sorted keys, no spaces: the same bytes on every endorsing peer
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class AssetTransfer(Contract):
    Name = "AssetTransfer"

    async def InitLedger(self, ctx: TransactionContext) -> None:
        for fields in SAMPLE_ASSETS:
            await ctx.get_stub().put_state(fields[0], to_json(asset(*fields)).encode())

    async def CreateAsset(
        self, ctx: TransactionContext, id: str, color: str, size: int, owner: str, appraisedValue: int
    ) -> None:
        if await self.AssetExists(ctx, id):
            raise ValueError(f"the asset {id} already exists")
        await ctx.get_stub().put_state(id, to_json(asset(id, color, size, owner, appraisedValue)).encode())

    async def ReadAsset(self, ctx: TransactionContext, id: str) -> str:
        data = await ctx.get_stub().get_state(id)
        if not data:
            raise ValueError(f"the asset {id} does not exist")
        return data.decode()

    async def UpdateAsset(
        self, ctx: TransactionContext, id: str, color: str, size: int, owner: str, appraisedValue: int
    ) -> None:
        if not await self.AssetExists(ctx, id):
            raise ValueError(f"the asset {id} does not exist")
        await ctx.get_stub().put_state(id, to_json(asset(id, color, size, owner, appraisedValue)).encode())

    async def DeleteAsset(self, ctx: TransactionContext, id: str) -> None:
        if not await self.AssetExists(ctx, id):
            raise ValueError(f"the asset {id} does not exist")
        await ctx.get_stub().delete_state(id)

    async def AssetExists(self, ctx: TransactionContext, id: str) -> bool:
        return bool(await ctx.get_stub().get_state(id))

    async def TransferAsset(self, ctx: TransactionContext, id: str, newOwner: str) -> str:
        current = json.loads(await self.ReadAsset(ctx, id))
        old_owner, current["Owner"] = current["Owner"], newOwner
        await ctx.get_stub().put_state(id, to_json(current).encode())
        return old_owner

    async def GetAllAssets(self, ctx: TransactionContext) -> str:
        # an open-ended range query ("" to "") returns every asset in the namespace
        results = await ctx.get_stub().get_state_by_range("", "")
        return to_json([json.loads(kv.value) async for kv in results])


if __name__ == "__main__":
    ContractChaincode.new_chaincode(AssetTransfer()).start()
