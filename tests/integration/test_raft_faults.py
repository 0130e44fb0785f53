"""Raft ordering service under faults, in real processes on loopback: three orderers, two
peers, a steady stream of transactions through the Gateway.

- kill -9 the leader: a new leader takes over, no acknowledged transaction is lost, every
  orderer and peer holds identical block hashes at every height; restarted, it catches up;
- cut the leader off (fault-injecting transport: network namespaces need privileges tests
  do not assume): the minority commits nothing, the majority continues, after healing all agree;
- bad input on the cluster port: malformed and replayed messages, a certificate that is not
  a consenter: refused and logged, consensus unaffected.

Each test prints its seed and what it checked.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import grpc
import pytest
from fabric_client import Identity, orderer_deliver_stub, peer_deliver_stub, secure_channel, seek_envelope
from fabric_protos.common import common_pb2
from fabric_protos.orderer import cluster_pb2
from fabric_protos.peer import transaction_pb2

from heddle.client import connect, identity_from_msp_dir, signer_from_msp_dir, tls_channel
from heddle.common.ports import free_port
from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.orderer.participation_client import request
from heddle.protocol import block_header_hash, parse_envelope, transactions_filter
from heddle.raft import Message, MessageType, encode_message

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "examples" / "asset_transfer_basic" / "chaincode"
SEED = int(os.environ.get("HEDDLE_TEST_SEED", random.randrange(1 << 30)))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    old = os.environ.get("HEDDLE_FAULT_INJECTION")
    os.environ["HEDDLE_FAULT_INJECTION"] = "1"  # inherited by the orderer processes
    spec = NetworkSpec(
        orderer_port=free_port(),
        orderer_admin_port=free_port(),
        peer_ports=[free_port(), free_port()],
        batch_timeout="200ms",
        max_message_count=20,
        orderers=3,
        extra_orderer_ports=[free_port(), free_port()],
        extra_orderer_admin_ports=[free_port(), free_port()],
        cluster_ports=[free_port() for _ in range(3)],
        # small snapshots, so a restarted orderer catches up from a snapshot plus block pulls
        raft_options={
            "TickInterval": "100ms",
            "ElectionTick": 10,
            "HeartbeatTick": 1,
            "SnapshotIntervalSize": "16 KB",
        },
    )
    network = LocalNetwork(tmp_path_factory.mktemp("raft"), spec)
    network.generate()
    try:
        network.start()
        network.join()
        network.deploy_chaincode("basic", str(BASIC))
        yield network
    finally:
        network.stop()
        if old is None:
            os.environ.pop("HEDDLE_FAULT_INJECTION", None)
        else:
            os.environ["HEDDLE_FAULT_INJECTION"] = old


# ----- observing the network -----


def raft_status(net: LocalNetwork, o: int) -> dict | None:
    try:
        status, body = request(net.orderer_admin_endpoint(o), "GET", f"/{net.spec.channel}")
    except Exception:
        return None
    return body if status == 200 else None


def wait_leader(net: LocalNetwork, among: list[int], exclude: int | None = None, timeout: float = 20) -> int:
    """The orderer index every orderer in ``among`` agrees leads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        infos = {o: raft_status(net, o) for o in among}
        leaders = {info["raft"]["leader"] for info in infos.values() if info}
        if len(leaders) == 1 and all(infos.values()):
            lead_id = leaders.pop()
            for o, info in infos.items():
                if info["raft"]["id"] == lead_id and o != exclude:
                    return o
        time.sleep(0.2)
    raise AssertionError(f"no agreed leader among {among}: {infos}")


def orderer_blocks(net: LocalNetwork, o: int, reader: Identity) -> list[common_pb2.Block]:
    with secure_channel(net.orderer_address_of(o), net.orderer_tls_ca) as ch:
        seek = seek_envelope(reader, net.spec.channel, 0, None, fail_if_not_ready=True)
        return [r.block for r in orderer_deliver_stub(ch)(iter([seek]), timeout=20) if r.HasField("block")]


def peer_blocks(net: LocalNetwork, i: int, reader: Identity, height: int) -> list[common_pb2.Block]:
    with secure_channel(net.peer_address(i), net.peer_tls_ca(i)) as ch:
        call = peer_deliver_stub(ch)(
            iter([seek_envelope(reader, net.spec.channel, 0, height - 1)]), timeout=30
        )
        return [r.block for r in call if r.HasField("block")]


def height(net: LocalNetwork, o: int) -> int:
    info = raft_status(net, o)
    return info["height"] if info else -1


def check_agreement(net: LocalNetwork, orderers: list[int], acked: list[str], label: str) -> int:
    """Same block hashes at every height on the given orderers and both peers; every
    acknowledged transaction VALID. Returns the common height."""
    reader = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    deadline = time.monotonic() + 30
    while True:
        heights = {o: height(net, o) for o in orderers}
        if len(set(heights.values())) == 1:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{label}: orderer heights never converged: {heights}")
        time.sleep(0.2)
    h = heights[orderers[0]]
    chains = {f"orderer{o}": orderer_blocks(net, o, reader) for o in orderers}
    for i in range(len(net.spec.peer_ports)):
        chains[f"peer{i}"] = peer_blocks(net, i, reader, h)
    hashes = {name: [block_header_hash(b.header) for b in blocks] for name, blocks in chains.items()}
    for name, hs in hashes.items():
        assert len(hs) == h, f"{label}: {name} has {len(hs)} blocks, expected {h}"
        assert hs == hashes[f"orderer{orderers[0]}"], f"{label}: {name} disagrees on block hashes"
    for n, b in enumerate(chains[f"orderer{orderers[0]}"][1:], start=1):
        assert b.header.previous_hash == block_header_hash(chains[f"orderer{orderers[0]}"][n - 1].header)
    for i in range(len(net.spec.peer_ports)):
        codes = {}
        for b in chains[f"peer{i}"]:
            flt = transactions_filter(b)
            for k, env in enumerate(b.data.data):
                codes[parse_envelope(env).tx_id] = flt[k] if k < len(flt) else None
        missing = [t for t in acked if t not in codes]
        assert not missing, f"{label}: peer{i} lacks {len(missing)} acknowledged txs, e.g. {missing[:3]}"
        invalid = [t for t in acked if codes[t] != transaction_pb2.VALID]
        assert not invalid, f"{label}: acknowledged txs not VALID on peer{i}: {invalid[:3]}"
    print(
        f"[seed {SEED}] {label}: {len(orderers)} orderers + {len(net.spec.peer_ports)} peers agree on "
        f"{h} block hashes; {len(acked)} acknowledged txs all VALID on every peer"
    )
    return h


class TxStream:
    """Submits CreateAsset transactions through the Gateway from two threads until stopped."""

    def __init__(self, net: LocalNetwork, seed: int, tag: str):
        self.net = net
        self.rng = random.Random(seed)
        self.tag = tag
        self.acked: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(2)]

    def _run(self, k: int) -> None:
        net = self.net
        org = k % len(net.spec.peer_ports)
        channel = tls_channel(
            net.peer_address(org), net.peer_tls_ca(org), server_name_override=net.peer_name(org)
        )
        msp = net.user_msp(org)
        gw = connect(identity_from_msp_dir(msp, f"Org{org + 1}MSP"), signer_from_msp_dir(msp), channel)
        contract = gw.get_network(net.spec.channel).get_contract("basic")
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                with self._lock:
                    value = str(self.rng.randrange(1, 1000))
                asset = f"{self.tag}-{k}-{n}"
                try:
                    submitted = contract.submit_async("CreateAsset", asset, "blue", "5", "Tom", value)
                except Exception:
                    with self._lock:
                        self.failed += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.acked.append(submitted.transaction_id)
        finally:
            channel.close()

    def __enter__(self) -> TxStream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        start = len(self.acked)
        while len(self.acked) < start + count:
            assert time.monotonic() < deadline, f"only {len(self.acked) - start} of {count} txs acknowledged"
            time.sleep(0.05)


def write_faults(net: LocalNetwork, o: int, drop: list[str]) -> None:
    path = net.orderer_ledger(o) / "cluster-faults.json"
    if drop:
        path.write_text(json.dumps({"drop": drop}))
    elif path.exists():
        path.unlink()


def cluster_endpoint(net: LocalNetwork, o: int) -> str:
    return f"{net.spec.host}:{net.spec.orderer_cluster_ports()[o]}"


# ----- the tests -----


def test_kill_leader_then_restart_it(net):
    t0 = time.monotonic()
    all_o = list(range(net.spec.orderers))
    leader = wait_leader(net, all_o)
    with TxStream(net, SEED, "kill") as stream:
        stream.wait_for(10)
        net.kill(net.orderer_name(leader))  # SIGKILL
        survivors = [o for o in all_o if o != leader]
        new_leader = wait_leader(net, survivors, exclude=leader)
        acked_at_kill = len(stream.acked)
        stream.wait_for(15, timeout=30)
    assert new_leader != leader
    print(
        f"[seed {SEED}] killed leader orderer{leader}; orderer{new_leader} took over; "
        f"{len(stream.acked) - acked_at_kill} txs acknowledged after the kill, {stream.failed} refused"
    )
    h = check_agreement(net, survivors, stream.acked, "after kill -9 of the leader")

    net.start_orderer(leader)
    with TxStream(net, SEED + 1, "restart") as again:
        again.wait_for(10, timeout=30)
    h2 = check_agreement(net, all_o, stream.acked + again.acked, "after restarting the old leader")
    assert h2 > h
    log_text = (net.data / "logs" / f"{net.orderer_name(leader)}.log").read_text()
    assert "installing raft snapshot" in log_text and "pulled blocks" in log_text
    print(
        f"[seed {SEED}] restarted orderer{leader} caught up to height {h2} from a Raft snapshot plus "
        f"block pulls ({time.monotonic() - t0:.1f}s)"
    )


def test_partitioned_leader_commits_nothing_and_all_agree_after_healing(net):
    t0 = time.monotonic()
    all_o = list(range(net.spec.orderers))
    leader = wait_leader(net, all_o)
    others = [o for o in all_o if o != leader]
    with TxStream(net, SEED + 2, "part") as stream:
        stream.wait_for(10)
        write_faults(net, leader, [cluster_endpoint(net, o) for o in others])
        for o in others:
            write_faults(net, o, [cluster_endpoint(net, leader)])
        try:
            new_leader = wait_leader(net, others, exclude=leader)
            time.sleep(1.0)  # entries committed before the cut have been applied by now
            minority_h = height(net, leader)
            majority_h = height(net, new_leader)
            stream.wait_for(15, timeout=30)
            time.sleep(1.0)
            assert height(net, leader) == minority_h, "the cut-off leader wrote blocks"
            grown = height(net, new_leader) - majority_h
            assert grown >= 2, f"the majority wrote only {grown} blocks"
            status = raft_status(net, leader)["raft"]
            assert status["role"] != "leader" or status["term"] < raft_status(net, new_leader)["raft"]["term"]
            print(
                f"[seed {SEED}] partitioned orderer{leader}: it stayed at height {minority_h} while "
                f"orderer{new_leader} (new leader) wrote {grown} blocks"
            )
        finally:
            for o in all_o:
                write_faults(net, o, [])
        stream.wait_for(5, timeout=30)
    check_agreement(net, all_o, stream.acked, "after healing the partition")
    print(f"[seed {SEED}] partition test took {time.monotonic() - t0:.1f}s")


def _cluster_call(net: LocalNetwork, target: int, cert_dir: Path, cert: str, key: str):
    creds = grpc.ssl_channel_credentials(
        root_certificates=net.orderer_tls_ca.read_bytes(),
        private_key=(cert_dir / key).read_bytes(),
        certificate_chain=(cert_dir / cert).read_bytes(),
    )
    channel = grpc.secure_channel(cluster_endpoint(net, target), creds)
    stub = channel.stream_stream(
        "/orderer.Cluster/Step",
        request_serializer=lambda b: b,
        response_deserializer=cluster_pb2.StepResponse.FromString,
    )
    return channel, stub


def test_bad_input_on_the_cluster_port_is_refused_and_logged(net):
    all_o = list(range(net.spec.orderers))
    leader = wait_leader(net, all_o)
    victim = next(o for o in all_o if o != leader)
    impostor = next(o for o in all_o if o not in (leader, victim))
    info = raft_status(net, victim)["raft"]
    term_before = info["term"]
    log_path = net.data / "logs" / f"{net.orderer_name(victim)}.log"
    ch_id = net.spec.channel

    # 1. a certificate from the orderers' TLS CA that is not a consenter's: refused
    admin_tls = net.orderer_org_dir / "users" / "Admin@example.com" / "tls"
    channel, stub = _cluster_call(net, victim, admin_tls, "client.crt", "client.key")
    msg = cluster_pb2.StepRequest(consensus_request=cluster_pb2.ConsensusRequest(channel=ch_id, payload=b"x"))
    with pytest.raises(grpc.RpcError) as err:
        list(stub(iter([msg.SerializeToString()]), timeout=10))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    channel.close()

    # 2. as a consenter (orderer `impostor`'s own TLS key): garbage StepRequest, garbage Raft
    #    payload, a message claiming another sender, and a replayed stale-term heartbeat
    tls = net.orderer_org_dir / "orderers" / net.orderer_name(impostor) / "tls"
    impostor_id = raft_status(net, impostor)["raft"]["id"]
    victim_id = info["id"]
    other_id = next(i for i in (1, 2, 3) if i not in (impostor_id, victim_id))
    stale = Message(MessageType.HEARTBEAT, to=victim_id, frm=impostor_id, term=max(1, term_before - 1))
    spoofed = Message(MessageType.HEARTBEAT, to=victim_id, frm=other_id, term=term_before + 5)
    bad = [
        b"\xff\x00garbage",
        cluster_pb2.StepRequest(
            consensus_request=cluster_pb2.ConsensusRequest(channel=ch_id, payload=b"HR\x01\x01trunc")
        ).SerializeToString(),
        cluster_pb2.StepRequest(
            consensus_request=cluster_pb2.ConsensusRequest(channel=ch_id, payload=encode_message(spoofed))
        ).SerializeToString(),
    ] + [
        cluster_pb2.StepRequest(
            consensus_request=cluster_pb2.ConsensusRequest(channel=ch_id, payload=encode_message(stale))
        ).SerializeToString()
    ] * 3
    channel, stub = _cluster_call(net, victim, tls, "server.crt", "server.key")
    call = stub(iter(bad), timeout=3)
    try:
        list(call)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
    channel.close()

    with TxStream(net, SEED + 3, "bad") as stream:
        stream.wait_for(5, timeout=30)
    after = raft_status(net, victim)["raft"]
    assert after["leader"] == info["leader"], "bad input changed the leader"
    check_agreement(net, all_o, stream.acked, "after bad cluster input")
    text = log_path.read_text()
    for needle in ("not a consenter", "undecodable StepRequest", "malformed raft message", "claiming node"):
        assert needle in text, f"{needle!r} not logged by {net.orderer_name(victim)}"
    print(
        f"[seed {SEED}] cluster port of orderer{victim}: non-consenter certificate refused "
        "(PERMISSION_DENIED), garbage StepRequest, malformed Raft payload, spoofed sender and "
        "replayed stale heartbeats dropped and logged; leader unchanged, txs still commit"
    )
