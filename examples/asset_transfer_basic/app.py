"""The asset-transfer-basic application, with heddle.client.

Runs against a network laid out as `heddle up` makes it (crypto under DATA/organizations,
Org1's peer gateway on localhost:7051):

    heddle up
    python examples/asset_transfer_basic/app.py [--data DATA] [--endpoint localhost:7051]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from heddle.client import (
    CommitError,
    Contract,
    EndorseError,
    GatewayError,
    connect,
    identity_from_msp_dir,
    signer_from_msp_dir,
    tls_channel,
)


def step(title: str, detail: object = None) -> None:
    print(f"--> {title}")
    if detail is not None:
        print(json.dumps(detail, indent=2) if not isinstance(detail, str) else f"    {detail}")


def run(contract: Contract, asset_id: str) -> None:
    step("Submit InitLedger: create the initial set of assets")
    contract.submit_transaction("InitLedger")
    step("*** Transaction committed successfully")

    step("Evaluate GetAllAssets: return all the current assets on the ledger")
    step("*** Result:", json.loads(contract.evaluate_transaction("GetAllAssets")))

    step(f"Submit CreateAsset: create asset {asset_id}")
    contract.submit_transaction("CreateAsset", asset_id, "yellow", "5", "Tom", "1300")
    step("*** Transaction committed successfully")

    step(f"Async submit TransferAsset: give {asset_id} a new owner")
    submitted = contract.submit_async("TransferAsset", asset_id, "Saptha")
    step(f"*** Successfully submitted; the old owner was {submitted.result.decode()}")
    status = submitted.get_status()
    if not status.successful:
        raise CommitError(status.transaction_id, status.code, status.block_number)
    step(f"*** Transaction {status.transaction_id} committed in block {status.block_number}")

    step(f"Evaluate ReadAsset: return the attributes of {asset_id}")
    step("*** Result:", json.loads(contract.evaluate_transaction("ReadAsset", asset_id)))

    step("Submit UpdateAsset of asset70, which does not exist: this must fail")
    try:
        contract.submit_transaction("UpdateAsset", "asset70", "blue", "5", "Tomoko", "300")
    except EndorseError as err:
        step("*** Successfully caught the error:", f"{err.code.name}: {err.message}")
        for d in err.details:
            step(f"    {d.address} ({d.msp_id}): {d.message}")
        return
    raise RuntimeError("UpdateAsset of a missing asset succeeded; it should have failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HEDDLE_DATA", "data")))
    parser.add_argument("--endpoint", default="localhost:7051", help="the gateway peer")
    parser.add_argument("--host-alias", default="peer0.org1.example.com", help="TLS name of the peer")
    parser.add_argument("--org", default="org1.example.com")
    parser.add_argument("--mspid", default="Org1MSP")
    parser.add_argument("--user", default="User1")
    parser.add_argument("--channel", default="mychannel")
    parser.add_argument("--chaincode", default="basic")
    args = parser.parse_args(argv)

    org = args.data / "organizations" / "peerOrganizations" / args.org
    msp = org / "users" / f"{args.user}@{args.org}" / "msp"
    tls_ca = org / "peers" / f"peer0.{args.org}" / "tls" / "ca.crt"
    channel = tls_channel(args.endpoint, tls_ca, server_name_override=args.host_alias)
    try:
        with connect(identity_from_msp_dir(msp, args.mspid), signer_from_msp_dir(msp), channel) as gateway:
            contract = gateway.get_network(args.channel).get_contract(args.chaincode)
            run(contract, f"asset{time.time_ns() // 1_000_000}")
    except (GatewayError, CommitError) as err:
        print(f"******** FAILED to run the application: {err}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
