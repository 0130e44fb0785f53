"""The cluster service's gatekeeping (certificate pinning, malformed input) and orderer.yaml's
General.Cluster / Consensus keys."""

from __future__ import annotations

import asyncio

import pytest
from fabric_protos.orderer import cluster_pb2

from heddle.common.config import ConfigFileError
from heddle.orderer.config import load_orderer_config
from heddle.orderer.consensus.raft.transport import ClusterService, FaultInjector, cert_der


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, pem: bytes | None):
        self.pem = pem
        self.aborted = None
        self.written = []

    def auth_context(self):
        return {"x509_pem_cert": [self.pem]} if self.pem else {}

    def peer(self):
        return "ipv4:127.0.0.1:5555"

    async def abort(self, code, details):
        self.aborted = (code, details)
        raise Aborted(details)

    async def write(self, msg):
        self.written.append(msg)


class RecordingChain:
    def __init__(self, consenter_pem: bytes):
        self.der = cert_der(consenter_pem)
        self.consensus = []
        self.submits = []

    def sender_id(self, der):
        return 2 if der == self.der else None

    def endpoint_of(self, node_id):
        return "127.0.0.1:8054"

    def on_consensus(self, sender, payload):
        self.consensus.append((sender, payload))

    def on_submit(self, sender, request, reply):
        self.submits.append((sender, request))

    def on_submit_response(self, resp):
        pass


@pytest.fixture(scope="module")
def certs(material):
    base = material.root / "ordererOrganizations" / "example.com"
    consenter = (base / "orderers" / "orderer.example.com" / "tls" / "server.crt").read_bytes()
    stranger = (base / "users" / "Admin@example.com" / "tls" / "client.crt").read_bytes()
    return consenter, stranger


async def _feed(items):
    for item in items:
        yield item


def _run(service, pem, items):
    ctx = FakeContext(pem)

    async def go():
        try:
            await service.step(_feed(items), ctx)
        except Aborted:
            pass

    asyncio.run(go())
    return ctx


def _consensus(channel: str, payload: bytes) -> bytes:
    return cluster_pb2.StepRequest(
        consensus_request=cluster_pb2.ConsensusRequest(channel=channel, payload=payload)
    ).SerializeToString()


def test_a_consenter_certificate_reaches_its_chain_as_its_node_id(certs):
    consenter, _ = certs
    service = ClusterService(FaultInjector(None))
    chain = RecordingChain(consenter)
    service.register("mychannel", chain)
    submit = cluster_pb2.StepRequest(submit_request=cluster_pb2.SubmitRequest(channel="mychannel"))
    ctx = _run(service, consenter, [_consensus("mychannel", b"raft"), submit.SerializeToString()])
    assert ctx.aborted is None
    assert chain.consensus == [(2, b"raft")]
    assert [s for s, _ in chain.submits] == [2]


def test_a_certificate_that_is_not_a_consenter_is_refused(certs, caplog):
    consenter, stranger = certs
    service = ClusterService(FaultInjector(None))
    chain = RecordingChain(consenter)
    service.register("mychannel", chain)
    ctx = _run(service, stranger, [_consensus("mychannel", b"raft")])
    assert ctx.aborted is not None and ctx.aborted[0].name == "PERMISSION_DENIED"
    assert chain.consensus == [] and service.rejected == 1
    assert "not a consenter" in caplog.text


def test_no_client_certificate_is_refused(certs):
    consenter, _ = certs
    service = ClusterService(FaultInjector(None))
    service.register("mychannel", RecordingChain(consenter))
    ctx = _run(service, None, [_consensus("mychannel", b"raft")])
    assert ctx.aborted[0].name == "UNAUTHENTICATED"


def test_malformed_and_misdirected_requests_are_dropped_and_the_stream_continues(certs, caplog):
    consenter, _ = certs
    service = ClusterService(FaultInjector(None))
    chain = RecordingChain(consenter)
    service.register("mychannel", chain)
    items = [
        b"\xff\xffnot a protobuf",
        cluster_pb2.StepRequest().SerializeToString(),  # neither consensus nor submit
        _consensus("otherchannel", b"x"),
        _consensus("mychannel", b"after"),
    ]
    ctx = _run(service, consenter, items)
    assert ctx.aborted is None
    assert chain.consensus == [(2, b"after")]
    assert service.dropped == 3
    assert "undecodable StepRequest" in caplog.text


def test_fault_injection_file_drops_traffic_only_when_enabled(tmp_path, monkeypatch, certs):
    path = tmp_path / "cluster-faults.json"
    path.write_text('{"drop": ["127.0.0.1:8054"]}')
    monkeypatch.delenv("HEDDLE_FAULT_INJECTION", raising=False)
    assert not FaultInjector(path).dropped("127.0.0.1:8054")
    monkeypatch.setenv("HEDDLE_FAULT_INJECTION", "1")
    faults = FaultInjector(path)
    assert faults.dropped("127.0.0.1:8054") and not faults.dropped("127.0.0.1:9054")
    consenter, _ = certs
    service = ClusterService(faults)
    chain = RecordingChain(consenter)
    service.register("mychannel", chain)
    _run(service, consenter, [_consensus("mychannel", b"raft")])
    assert chain.consensus == []


def _yaml(tmp_path, extra: str) -> str:
    p = tmp_path / "orderer.yaml"
    p.write_text(
        "General:\n  LocalMSPID: OrdererMSP\n  LocalMSPDir: msp\n"
        "  TLS:\n    Enabled: true\n    Certificate: tls/server.crt\n    PrivateKey: tls/server.key\n"
        "    RootCAs: [tls/ca.crt]\n" + extra + "FileLedger:\n  Location: prod\n"
    )
    return str(p)


def test_cluster_keys_default_to_general_tls_and_the_ledger(tmp_path):
    cfg = load_orderer_config(_yaml(tmp_path, "  Cluster:\n    ListenPort: 7054\n"))
    assert cfg.cluster is not None and cfg.cluster.address == "127.0.0.1:7054"
    assert cfg.cluster.client_cert == tmp_path / "tls" / "server.crt"
    assert cfg.cluster.root_cas == [tmp_path / "tls" / "ca.crt"]
    assert cfg.wal_dir == tmp_path / "prod" / "etcdraft" / "wal"
    assert cfg.snap_dir == tmp_path / "prod" / "etcdraft" / "snapshot"


def test_no_cluster_listen_port_means_no_cluster(tmp_path):
    cfg = load_orderer_config(_yaml(tmp_path, ""))
    assert cfg.cluster is None


def test_cluster_without_certificates_names_the_key(tmp_path):
    p = tmp_path / "orderer.yaml"
    p.write_text(
        "General:\n  LocalMSPID: OrdererMSP\n  LocalMSPDir: msp\n  Cluster:\n    ListenPort: 7054\n"
        "FileLedger:\n  Location: prod\n"
    )
    with pytest.raises(ConfigFileError, match="General.Cluster.ServerCertificate"):
        load_orderer_config(str(p))
