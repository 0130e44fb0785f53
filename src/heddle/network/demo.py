"""`heddle demo`: the embedded default network, the asset-transfer application, and a summary
of what the ledger holds afterwards."""

from __future__ import annotations

import json
import runpy
import sys
from collections import Counter
from pathlib import Path

from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.peer import transaction_pb2

from heddle.network.local import LocalNetwork
from heddle.network.up import example_path, up


def _say(step: str) -> None:
    print(f"\n== {step}", flush=True)


def run_demo(data_dir: Path) -> int:
    data = Path(data_dir).absolute()
    if LocalNetwork.running_pids(data):
        _say(f"Using the network already running from {data}")
    else:
        _say("heddle up: the default network (orderer, two peers, channel mychannel, chaincode basic)")
        up(data)
    _say("The asset-transfer-basic application (examples/asset_transfer_basic/app.py) through heddle.client")
    app = example_path() / "app.py"
    argv = sys.argv
    try:
        sys.argv = [str(app), "--data", str(data)]
        try:
            runpy.run_path(str(app), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (0, None):
                return int(exc.code)
    finally:
        sys.argv = argv
    _say("What each peer's ledger holds")
    _summary(data)
    print(
        f"\nThe network keeps running: try `heddle peer lifecycle chaincode querycommitted` or the Node "
        f"client in tests/integration/node. Stop it with: heddle down --data {data}"
    )
    return 0


def _summary(data: Path) -> None:
    """Ask each peer (Deliver for the blocks, the Gateway for the assets) what it holds."""
    from heddle.client import connect, identity_from_msp_dir, signer_from_msp_dir, tls_channel
    from heddle.protocol import parse_endorser_transaction, parse_envelope, transactions_filter

    net = LocalNetwork.from_description(data, json.loads((data / "network.json").read_text()))
    for i in range(len(net.spec.peer_ports)):
        msp = net.user_msp(i)
        channel = tls_channel(net.peer_address(i), net.peer_tls_ca(i), server_name_override=net.peer_name(i))
        with channel:
            gateway = connect(identity_from_msp_dir(msp, f"Org{i + 1}MSP"), signer_from_msp_dir(msp), channel)
            network = gateway.get_network(net.spec.channel)
            assets = json.loads(network.get_contract("basic").evaluate_transaction("GetAllAssets"))
            info = ledger_pb2.BlockchainInfo.FromString(
                network.get_contract("qscc").evaluate_transaction("GetChainInfo", net.spec.channel)
            )
            height = info.height
            codes: Counter[str] = Counter()
            calls: Counter[str] = Counter()
            events = network.get_block_events(start_block=0)
            try:
                for block in events:
                    flt = transactions_filter(block)
                    for n, raw in enumerate(block.data.data):
                        codes[transaction_pb2.TxValidationCode.Name(flt[n])] += 1
                        env = parse_envelope(raw)
                        if env.header_type == common_pb2.ENDORSER_TRANSACTION:
                            for action in parse_endorser_transaction(env.payload.data):
                                calls[action.chaincode_name] += 1
                    if block.header.number + 1 >= height:
                        break
            finally:
                events.close()
        ids = [a["ID"] for a in assets]
        print(
            f"  {net.peer_name(i)}: {height} blocks; transactions {dict(codes)}; by chaincode {dict(calls)}"
        )
        more = ", ..." if len(ids) > 8 else ""
        print(f"    world state of 'basic': {len(ids)} assets ({', '.join(ids[:8])}{more})")
