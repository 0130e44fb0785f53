"""`heddle up`: the default network as a Fabric test-network user knows it, left running."""

from __future__ import annotations

import json
from pathlib import Path

from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.network.progress import Steps
from heddle.network.tcf_services import start_tcf_services, stop_tcf_services

EXAMPLE = "asset_transfer_basic"


def example_path(name: str = EXAMPLE) -> Path:
    """The repository's examples/<name> (heddle runs from a source checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / name
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"examples/{name} not found next to the heddle sources")


def _spec(channel: str, batch_timeout: str, orderers: int = 1) -> NetworkSpec:
    return NetworkSpec(channel=channel, batch_timeout=batch_timeout, orderers=orderers)


def up(
    data: Path,
    channel: str = "mychannel",
    chaincode: bool = True,
    batch_timeout: str = "2s",
    orderers: int = 1,
    tcf: bool = True,
    tcf_bind: str = "localhost:1947",
) -> LocalNetwork:
    data = Path(data).absolute()
    running = LocalNetwork.running_pids(data)
    if running:
        names = ", ".join(sorted(running))
        raise RuntimeError(f"a network is already running from {data} ({names}); run 'heddle down' first")
    if orderers < 1:
        raise ValueError("--orderers must be at least 1")
    _check_orderer_count(data, orderers)
    net = LocalNetwork(data, _spec(channel, batch_timeout, orderers))
    steps = Steps((6 if chaincode else 5) + orderers - 1 + (1 if tcf else 0))
    try:
        if (data / "network.json").exists() and net.genesis_path.exists():
            steps.step(f"Reusing crypto material and genesis block in {data}", lambda: None)
        else:
            steps.step(f"Generating crypto material under {data / 'organizations'}", net.generate)
        for o in range(orderers):
            steps.step(f"Starting {net.orderer_name(o)} on {net.orderer_address_of(o)}", net.start_orderer, o)
        for i in range(len(net.spec.peer_ports)):
            steps.step(f"Starting {net.peer_name(i)} on {net.peer_address(i)}", net.start_peer, i)
        steps.step(f"Creating channel '{channel}' and joining the orderer and peers", _join_if_needed, net)
        if chaincode:
            steps.step("Deploying chaincode 'basic' (examples/asset_transfer_basic)", _deploy_basic, net)
        if tcf:
            steps.step(
                f"Starting trusted compute: chaincode 'tcf', listener on {tcf_bind}, a singleton worker, "
                "the connector",
                start_tcf_services,
                net,
                data,
                bind=tcf_bind,
            )
        steps.close()
    except Exception:
        if tcf:
            stop_tcf_services(data)
        net.stop()
        raise
    # leave the processes running; `heddle down` stops them through the pid file
    net.procs.clear()
    print(json.dumps(net.describe(), indent=2))
    print(f"Logs: {data / 'logs'}. Stop with: heddle down --data {data}")
    return net


def _check_orderer_count(data: Path, orderers: int) -> None:
    """A network generated earlier keeps its ordering service; refuse a different --orderers."""
    described = data / "network.json"
    if not described.exists():
        return
    had = len(json.loads(described.read_text()).get("orderers") or [None])
    if had != orderers:
        raise RuntimeError(
            f"{data} holds a network with {had} orderer(s); run 'heddle down --clean' before "
            f"starting one with {orderers}"
        )


def _join_if_needed(net: LocalNetwork) -> None:
    ledger = net.data / "production" / "orderer.example.com" / "chains" / net.spec.channel
    if ledger.exists():
        if net.spec.raft:
            net.wait_for_raft_leader()
        return  # restarted network: the orderer and peers reopen their ledgers
    net.join()


def _deploy_basic(net: LocalNetwork) -> None:
    if _committed(net, "basic"):
        return
    net.deploy_chaincode("basic", str(example_path() / "chaincode"))


def _committed(net: LocalNetwork, name: str) -> bool:
    try:
        return net.committed_sequence(name) > 0
    except Exception:
        return False


def deploy(
    data: Path, name: str, source: str, signature_policy: str | None = None, version: str = "1.0"
) -> None:
    data = Path(data).absolute()
    if not LocalNetwork.running_pids(data):
        raise RuntimeError(f"no running network in {data}; start one with 'heddle up'")
    spec_doc = json.loads((data / "network.json").read_text())
    net = LocalNetwork.from_description(data, spec_doc)
    sequence = net.deploy_chaincode(name, source, signature_policy=signature_policy, version=version)
    print(f"Chaincode '{name}' committed on channel '{net.spec.channel}' at sequence {sequence}")
