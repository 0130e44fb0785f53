"""The etcdraft chain test harness: RaftChains in one event loop over an in-memory cluster
transport (real block stores, real WALs, real signing identities). Used by
tests/unit/orderer/test_raft_chain.py and test_raft_config_changes.py."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import yaml
from fabric_client import Identity, write_transaction

from heddle.channelconfig import genesis_block, load_configtx
from heddle.channelconfig.defaults import DEFAULT_PROFILE, write_default_configtx
from heddle.ledger import BlockStore
from heddle.msp import load_signing_identity
from heddle.msp.cryptogen import generate_default_network
from heddle.orderer.channel import ChannelSupport
from heddle.orderer.consensus.raft import Cluster, RaftChain
from heddle.orderer.consensus.raft.transport import cert_der
from heddle.protocol import block_header_hash, parse_envelope

NAMES = ["orderer.example.com", "orderer2.example.com", "orderer3.example.com", "orderer4.example.com"]


def make_raft_material(tmp_path_factory, name: str, generated_orderers: int = 3):
    """Crypto for ``generated_orderers`` orderers and a genesis block whose consenters are the
    first three (7050, 8050, 9050), with a 20 ms Raft tick and small blocks for fast tests."""
    root = tmp_path_factory.mktemp(name)
    orgs = root / "organizations"
    generate_default_network(orgs, orderers=generated_orderers)
    path = write_default_configtx(
        root / "configtx.yaml",
        orgs,
        consensus="etcdraft",
        orderers=3,
        orderer_ports=[7050, 8050, 9050],
        batch_timeout="100ms",
        max_message_count=5,
    )
    doc = yaml.safe_load(path.read_text())
    for profile in doc["Profiles"].values():
        profile["Orderer"]["EtcdRaft"]["Options"] = {"TickInterval": "20ms"}
    path.write_text(yaml.safe_dump(doc))
    return root, genesis_block(load_configtx(path), DEFAULT_PROFILE, "mychannel", path.parent)


def start_nodes(root, genesis, cluster, tmp_path, count: int = 3) -> list:
    nodes = [Node(root, genesis, i, cluster, tmp_path) for i in range(count)]
    for n in nodes:
        n.start()
    return nodes


class FakeService:
    def register(self, channel_id, chain):
        pass

    def unregister(self, channel_id, chain):
        pass


class MemoryCluster:
    """Routes StepRequests between chains by consenter endpoint; ``cut`` drops links."""

    def __init__(self):
        self.chains: dict[str, RaftChain] = {}  # endpoint -> chain
        self.cut: set[frozenset[str]] = set()

    def transport(self, endpoint: str, cert_pem: bytes) -> MemoryTransport:
        return MemoryTransport(self, endpoint, cert_pem)


class MemoryTransport:
    def __init__(self, cluster: MemoryCluster, endpoint: str, cert_pem: bytes):
        self.cluster = cluster
        self.endpoint = endpoint
        self.client_cert_der = cert_der(cert_pem)
        self.listener = None

    def add_roots(self, pems):
        pass

    def listen_submit_responses(self, channel_id, fn):
        self.listener = fn

    def send(self, endpoint, req):
        if frozenset((self.endpoint, endpoint)) in self.cluster.cut:
            return
        target = self.cluster.chains.get(endpoint)
        if target is None or target._halted:
            return
        sender = target.sender_id(self.client_cert_der)
        if sender is None:  # as the cluster service: not a consenter (any more), refused
            return
        kind = req.WhichOneof("payload")
        if kind == "consensus_request":
            target.on_consensus(sender, req.consensus_request.payload)
        else:

            def reply(resp):
                if self.listener is not None:
                    self.listener(resp)

            target.on_submit(sender, req.submit_request, reply)


class Node:
    def __init__(self, root: Path, genesis, i: int, cluster: MemoryCluster, workdir: Path):
        org = root / "organizations" / "ordererOrganizations" / "example.com" / "orderers" / NAMES[i]
        self.identity = load_signing_identity(org / "msp", "OrdererMSP")
        self.cert = (org / "tls" / "server.crt").read_bytes()
        self.endpoint = f"127.0.0.1:{7050 + 1000 * i}"
        self.dir = workdir / NAMES[i]
        self.cluster = cluster
        self.genesis = genesis
        self.store: BlockStore | None = None
        self.chain: RaftChain | None = None

    def start(self) -> RaftChain:
        self.store = BlockStore(self.dir / "chain", index_txids=False)
        if self.store.height == 0:
            self.store.append(self.genesis)
        support = ChannelSupport("mychannel", self.store, self.identity, None)
        transport = self.cluster.transport(self.endpoint, self.cert)
        self.chain = RaftChain(
            support, Cluster(transport, FakeService(), self.dir / "wal", self.dir / "snap")
        )
        self.cluster.chains[self.endpoint] = self.chain
        self.chain.start()
        return self.chain

    async def stop(self) -> None:
        await self.chain.halt()
        self.store.close()


def messages(root: Path, n: int, seed: int):
    rng = random.Random(seed)
    msp = (
        root / "organizations" / "peerOrganizations" / "org1.example.com" / "users" / "User1@org1.example.com"
    )
    user = Identity.from_msp_dir(msp / "msp", "Org1MSP")
    out = []
    for k in range(n):
        env, _ = write_transaction(user, "mychannel", {f"k{k}-{rng.randrange(10**9)}": b"v"})
        raw = env.SerializeToString()
        out.append((parse_envelope(raw), raw))
    return out


async def wait_leader(nodes: list[Node], timeout: float = 5.0) -> Node:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for n in nodes:
            if n.chain.node is not None and n.chain.node.role.name == "LEADER":
                others = [m for m in nodes if m is not n]
                if all(m.chain.node is not None and m.chain.node.leader == n.chain.my_id for m in others):
                    return n
        await asyncio.sleep(0.02)
    raise AssertionError("no leader elected")


async def order(node: Node, msgs) -> list[int]:
    support = node.chain.support
    futures = [node.chain.order(p, raw, support.check_normal(p)) for p, raw in msgs]
    return await asyncio.gather(*futures)


async def converge(nodes: list[Node], timeout: float = 5.0) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        heights = {n.store.height for n in nodes}
        if len(heights) == 1:
            break
        assert asyncio.get_running_loop().time() < deadline, f"heights never converged: {heights}"
        await asyncio.sleep(0.02)
    h = heights.pop()
    for number in range(h):
        hashes = {block_header_hash(n.store.get_by_number(number).header) for n in nodes}
        assert len(hashes) == 1, f"nodes disagree on block {number}"
    return h
