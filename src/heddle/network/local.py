"""A Fabric test-network shaped network on this machine, in real processes.

Layout under DATA (as Fabric's test-network):
  organizations/{ordererOrganizations,peerOrganizations}/...   crypto material
  configtx.yaml, channel-artifacts/<channel>.block              channel genesis
  orderer/orderer.yaml, peers/<peer>/core.yaml                  node configuration
  production/<node>/                                            ledgers
  logs/<node>.log                                               node logs
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from heddle.channelconfig import genesis_block, load_configtx
from heddle.channelconfig.defaults import DEFAULT_PROFILE, write_default_configtx
from heddle.msp.cryptogen import CryptoMaterial, generate_default_network
from heddle.network import pidfile


@dataclass
class NetworkSpec:
    channel: str = "mychannel"
    host: str = "127.0.0.1"
    orderer_port: int = 7050
    orderer_admin_port: int = 7053
    peer_ports: list[int] = field(default_factory=lambda: [7051, 9051])
    batch_timeout: str = "2s"
    max_message_count: int = 500
    state_database: str = ""  # the embedded default
    # Raft ordering service (etcdraft) when orderers > 1; orderer i>0 uses the i-th entry of
    # the lists below (default ports 8050, 9050, ... admin +3, cluster +4)
    orderers: int = 1
    extra_orderer_ports: list[int] = field(default_factory=list)
    extra_orderer_admin_ports: list[int] = field(default_factory=list)
    cluster_ports: list[int] = field(default_factory=list)  # one per orderer
    raft_options: dict = field(default_factory=dict)  # EtcdRaft.Options overrides (TickInterval, ...)
    # orderers with crypto material and orderer.yaml but not in the channel's consenter set
    # (to be added with a config update); they follow the others in the port lists
    spare_orderers: int = 0

    @property
    def raft(self) -> bool:
        return self.orderers > 1

    def orderer_listen_ports(self) -> list[int]:
        n = self.orderers + self.spare_orderers
        extra = self.extra_orderer_ports or [self.orderer_port + 1000 * i for i in range(1, n)]
        return [self.orderer_port, *extra[: n - 1]]

    def orderer_admin_ports(self) -> list[int]:
        n = self.orderers + self.spare_orderers
        extra = self.extra_orderer_admin_ports or [p + 3 for p in self.orderer_listen_ports()[1:]]
        return [self.orderer_admin_port, *extra[: n - 1]]

    def orderer_cluster_ports(self) -> list[int]:
        return list(self.cluster_ports) or [p + 4 for p in self.orderer_listen_ports()]


def _holds_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on ``port`` (None where /proc cannot
    tell). Connecting is not proof: another process may be the one listening there."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rpartition(":")[2], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def _wait_port(host: str, port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    other = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"process exited with code {proc.returncode}; log tail:\n{tail}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                if _holds_listener(proc.pid, port) is not False:
                    return
                other = True  # someone else listens there; ours should fail to bind and exit
        time.sleep(0.05)
    if other:
        raise RuntimeError(f"{host}:{port} is held by another process, not by pid {proc.pid} (log: {log})")
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f}s (log: {log})")


class LocalNetwork:
    """Generate, start, join and stop a local network (one orderer, one peer per org)."""

    def __init__(self, data_dir: str | Path, spec: NetworkSpec | None = None):
        self.data = Path(data_dir).absolute()
        self.spec = spec or NetworkSpec()
        self.orgs_dir = self.data / "organizations"
        self.procs: dict[str, subprocess.Popen] = {}
        self.crypto: CryptoMaterial | None = None

    @classmethod
    def from_description(cls, data_dir: str | Path, doc: dict) -> LocalNetwork:
        """A handle on a network generated earlier, from its network.json."""
        host, _, oport = doc["orderer"]["address"].rpartition(":")
        spec = NetworkSpec(
            channel=doc["channel"],
            host=host,
            orderer_port=int(oport),
            orderer_admin_port=int(doc["orderer"]["admin"].rpartition(":")[2]),
            peer_ports=[int(p["address"].rpartition(":")[2]) for p in doc["peers"]],
        )
        orderers = doc.get("orderers") or []
        if len(orderers) > 1:
            spec.orderers = len(orderers)
            spec.extra_orderer_ports = [int(o["address"].rpartition(":")[2]) for o in orderers[1:]]
            spec.extra_orderer_admin_ports = [int(o["admin"].rpartition(":")[2]) for o in orderers[1:]]
            spec.cluster_ports = [int(o["cluster"].rpartition(":")[2]) for o in orderers]
        return cls(data_dir, spec)

    # ----- paths -----
    @property
    def genesis_path(self) -> Path:
        return self.data / "channel-artifacts" / f"{self.spec.channel}.block"

    def peer_name(self, i: int) -> str:
        return f"peer0.org{i + 1}.example.com"

    def peer_address(self, i: int) -> str:
        return f"{self.spec.host}:{self.spec.peer_ports[i]}"

    @property
    def orderer_address(self) -> str:
        return f"{self.spec.host}:{self.spec.orderer_port}"

    def org_dir(self, i: int) -> Path:
        return self.orgs_dir / "peerOrganizations" / f"org{i + 1}.example.com"

    @property
    def orderer_org_dir(self) -> Path:
        return self.orgs_dir / "ordererOrganizations" / "example.com"

    def user_msp(self, i: int, user: str = "User1") -> Path:
        return self.org_dir(i) / "users" / f"{user}@org{i + 1}.example.com" / "msp"

    def peer_tls_ca(self, i: int) -> Path:
        return self.org_dir(i) / "peers" / self.peer_name(i) / "tls" / "ca.crt"

    @property
    def orderer_tls_ca(self) -> Path:
        return self.orderer_org_dir / "orderers" / "orderer.example.com" / "tls" / "ca.crt"

    # ----- generation -----
    def generate(self) -> None:
        """Crypto material, configtx.yaml, the channel's genesis block and node configs."""
        spec = self.spec
        self.data.mkdir(parents=True, exist_ok=True)
        self.crypto = generate_default_network(
            self.orgs_dir,
            peer_orgs=len(spec.peer_ports),
            **({"orderers": spec.orderers + spec.spare_orderers} if spec.raft else {}),
        )
        configtx = write_default_configtx(
            self.data / "configtx.yaml",
            self.orgs_dir,
            host=spec.host,
            orderer_ports=spec.orderer_listen_ports()[: spec.orderers] if spec.raft else [spec.orderer_port],
            peer_ports=spec.peer_ports,
            batch_timeout=spec.batch_timeout,
            max_message_count=spec.max_message_count,
            peer_orgs=len(spec.peer_ports),
            **({"consensus": "etcdraft", "orderers": spec.orderers} if spec.raft else {}),
        )
        if spec.raft:
            self._raft_configtx(configtx)
        block = genesis_block(load_configtx(configtx), DEFAULT_PROFILE, spec.channel, configtx.parent)
        self.genesis_path.parent.mkdir(parents=True, exist_ok=True)
        self.genesis_path.write_bytes(block.SerializeToString())
        for o in range(spec.orderers + (spec.spare_orderers if spec.raft else 0)):
            self._write_orderer_yaml(o)
        for i in range(len(spec.peer_ports)):
            self._write_core_yaml(i)
        (self.data / "network.json").write_text(json.dumps(self.describe(), indent=2))

    def _raft_configtx(self, path: Path) -> None:
        """Consenters listen on the orderers' cluster ports; apply EtcdRaft.Options overrides."""
        text = path.read_text()
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        doc = yaml.safe_load(text)
        for profile in doc["Profiles"].values():
            raft = profile["Orderer"]["EtcdRaft"]
            ports = self.spec.orderer_cluster_ports()[: self.spec.orderers]
            for c, port in zip(raft["Consenters"], ports, strict=True):
                c["Port"] = port
            if self.spec.raft_options:
                raft["Options"] = dict(self.spec.raft_options)
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))

    # ----- orderers (one for solo; orderer.example.com, orderer2.example.com, ... for Raft) -----
    def orderer_name(self, o: int = 0) -> str:
        return "orderer.example.com" if o == 0 else f"orderer{o + 1}.example.com"

    def orderer_address_of(self, o: int) -> str:
        return f"{self.spec.host}:{self.spec.orderer_listen_ports()[o]}"

    def orderer_admin_address_of(self, o: int) -> str:
        return f"{self.spec.host}:{self.spec.orderer_admin_ports()[o]}"

    def orderer_yaml(self, o: int = 0) -> Path:
        if o == 0:
            return self.data / "orderer" / "orderer.yaml"
        return self.data / "orderer" / self.orderer_name(o) / "orderer.yaml"

    def orderer_ledger(self, o: int = 0) -> Path:
        return self.data / "production" / self.orderer_name(o)

    def orderer_admin_endpoint(self, o: int = 0):
        from heddle.orderer.participation_client import AdminEndpoint

        admin_tls = self.orderer_org_dir / "users" / "Admin@example.com" / "tls"
        return AdminEndpoint(
            self.orderer_admin_address_of(o),
            self.orderer_tls_ca,
            admin_tls / "client.crt",
            admin_tls / "client.key",
        )

    def describe(self) -> dict:
        return {
            "channel": self.spec.channel,
            "orderer": {
                "address": self.orderer_address,
                "admin": f"{self.spec.host}:{self.spec.orderer_admin_port}",
                "tlsCA": str(self.orderer_tls_ca),
            },
            "peers": [
                {
                    "name": self.peer_name(i),
                    "mspid": f"Org{i + 1}MSP",
                    "address": self.peer_address(i),
                    "tlsCA": str(self.peer_tls_ca(i)),
                    "userMSP": str(self.user_msp(i)),
                    "adminMSP": str(self.user_msp(i, "Admin")),
                }
                for i in range(len(self.spec.peer_ports))
            ],
            **(
                {
                    "orderers": [
                        {
                            "name": self.orderer_name(o),
                            "address": self.orderer_address_of(o),
                            "admin": self.orderer_admin_address_of(o),
                            "cluster": f"{self.spec.host}:{self.spec.orderer_cluster_ports()[o]}",
                        }
                        for o in range(self.spec.orderers)
                    ]
                }
                if self.spec.raft
                else {}
            ),
        }

    def _write_orderer_yaml(self, o: int = 0) -> None:
        node = self.orderer_org_dir / "orderers" / self.orderer_name(o)
        admin_tls = self.orderer_org_dir / "users" / "Admin@example.com" / "tls"
        doc = {
            "General": {
                "ListenAddress": self.spec.host,
                "ListenPort": self.spec.orderer_listen_ports()[o],
                "TLS": {
                    "Enabled": True,
                    "PrivateKey": str(node / "tls" / "server.key"),
                    "Certificate": str(node / "tls" / "server.crt"),
                    "RootCAs": [str(node / "tls" / "ca.crt")],
                    "ClientAuthRequired": False,
                },
                "BootstrapMethod": "none",
                "LocalMSPDir": str(node / "msp"),
                "LocalMSPID": "OrdererMSP",
            },
            "FileLedger": {"Location": str(self.orderer_ledger(o))},
            "Admin": {
                "ListenAddress": self.orderer_admin_address_of(o),
                "TLS": {
                    "Enabled": True,
                    "PrivateKey": str(node / "tls" / "server.key"),
                    "Certificate": str(node / "tls" / "server.crt"),
                    "RootCAs": [str(node / "tls" / "ca.crt")],
                    "ClientAuthRequired": True,
                    "ClientRootCAs": [str(admin_tls / "ca.crt")],
                },
            },
            "ChannelParticipation": {"Enabled": True, "MaxRequestBodySize": "1 MB"},
        }
        if self.spec.raft:
            tls = node / "tls"
            doc["General"]["Cluster"] = {
                "ListenAddress": self.spec.host,
                "ListenPort": self.spec.orderer_cluster_ports()[o],
                "ServerCertificate": str(tls / "server.crt"),
                "ServerPrivateKey": str(tls / "server.key"),
                "ClientCertificate": str(tls / "server.crt"),
                "ClientPrivateKey": str(tls / "server.key"),
                "RootCAs": [str(tls / "ca.crt")],
            }
            wal = self.orderer_ledger(o) / "etcdraft"
            doc["Consensus"] = {"WALDir": str(wal / "wal"), "SnapDir": str(wal / "snapshot")}
        path = self.orderer_yaml(o)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def _write_core_yaml(self, i: int) -> None:
        name = self.peer_name(i)
        node = self.org_dir(i) / "peers" / name
        doc = {
            "peer": {
                "id": name,
                "address": self.peer_address(i),
                "listenAddress": self.peer_address(i),
                "localMspId": f"Org{i + 1}MSP",
                "mspConfigPath": str(node / "msp"),
                "fileSystemPath": str(self.data / "production" / name),
                "tls": {
                    "enabled": True,
                    "cert": {"file": str(node / "tls" / "server.crt")},
                    "key": {"file": str(node / "tls" / "server.key")},
                    "rootcert": {"file": str(node / "tls" / "ca.crt")},
                    "clientAuthRequired": False,
                },
            },
            "ledger": {"state": {"stateDatabase": self.spec.state_database}},
        }
        path = self.data / "peers" / name / "core.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    # ----- processes -----
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "heddle.cli.main", "--log-level", "WARNING", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        pidfile.record(self.data, {name: proc.pid})
        return proc

    @staticmethod
    def running_pids(data_dir: str | Path) -> dict[str, int]:
        """Processes of a network started earlier (possibly by another command) that still run."""
        return pidfile.running(data_dir)

    @staticmethod
    def stop_pids(data_dir: str | Path, timeout: float = 15.0) -> list[str]:
        """Stop every recorded process of a network (SIGTERM, then SIGKILL)."""
        return pidfile.stop(data_dir, timeout=timeout)

    def start_orderer(self, o: int = 0) -> None:
        name = self.orderer_name(o)
        proc = self._spawn(name, ["orderer", "start", "--config", str(self.orderer_yaml(o))])
        log = self.data / "logs" / f"{name}.log"
        _wait_port(self.spec.host, self.spec.orderer_listen_ports()[o], proc, log)
        _wait_port(self.spec.host, self.spec.orderer_admin_ports()[o], proc, log)

    def start_orderers(self) -> None:
        for o in range(self.spec.orderers):
            self.start_orderer(o)

    def start_peer(self, i: int) -> None:
        name = self.peer_name(i)
        proc = self._spawn(name, ["peer", "start", "--config", str(self.data / "peers" / name / "core.yaml")])
        _wait_port(self.spec.host, self.spec.peer_ports[i], proc, self.data / "logs" / f"{name}.log")

    def start(self) -> None:
        self.start_orderers()
        for i in range(len(self.spec.peer_ports)):
            self.start_peer(i)

    def join(self) -> None:
        """Join the orderer (participation API) and every peer (cscc) to the channel."""
        from heddle.orderer.participation_client import AdminEndpoint
        from heddle.orderer.participation_client import join as join_orderer

        admin_tls = self.orderer_org_dir / "users" / "Admin@example.com" / "tls"
        endpoint = AdminEndpoint(
            f"{self.spec.host}:{self.spec.orderer_admin_port}",
            self.orderer_tls_ca,
            admin_tls / "client.crt",
            admin_tls / "client.key",
        )
        status, body = join_orderer(endpoint, self.genesis_path.read_bytes())
        if status != 201:
            raise RuntimeError(f"orderer did not join the channel: HTTP {status} {body}")
        for o in range(1, self.spec.orderers):
            status, body = join_orderer(self.orderer_admin_endpoint(o), self.genesis_path.read_bytes())
            if status != 201:
                raise RuntimeError(f"{self.orderer_name(o)} did not join the channel: HTTP {status} {body}")
        if self.spec.raft:
            self.wait_for_raft_leader()
        for i in range(len(self.spec.peer_ports)):
            self.join_peer(i)

    def wait_for_raft_leader(self, timeout: float = 60.0) -> int:
        """Wait until every orderer knows the channel's Raft leader; its node id."""
        from heddle.orderer.participation_client import request

        deadline = time.monotonic() + timeout
        while True:
            leaders = set()
            for o in range(self.spec.orderers):
                try:
                    status, body = request(self.orderer_admin_endpoint(o), "GET", f"/{self.spec.channel}")
                except Exception:
                    status, body = 0, None
                leaders.add((body or {}).get("raft", {}).get("leader", 0) if status == 200 else 0)
            if len(leaders) == 1 and 0 not in leaders:
                return leaders.pop()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Raft ordering service elected no leader within {timeout:.0f}s")
            time.sleep(0.2)

    def admin(self, i: int):
        from heddle.msp import load_signing_identity

        return load_signing_identity(self.user_msp(i, "Admin"), f"Org{i + 1}MSP")

    def join_peer(self, i: int) -> None:
        from heddle.peer.admin import join_channel

        join_channel(self.peer_address(i), self.peer_tls_ca(i), self.admin(i), self.genesis_path.read_bytes())

    # ----- chaincode -----
    def _lifecycle_parties(self):
        from heddle.chaincode.lifecycle.client import Endpoint, OrgAdmin

        admins = [
            OrgAdmin(self.admin(i), (Endpoint.of(self.peer_address(i), self.peer_tls_ca(i)),))
            for i in range(len(self.spec.peer_ports))
        ]
        return admins, Endpoint.of(self.orderer_address, self.orderer_tls_ca)

    def committed_sequence(self, name: str) -> int:
        from heddle.chaincode.lifecycle.client import committed_sequence

        admins, _ = self._lifecycle_parties()
        return committed_sequence(admins[0].identity, self.spec.channel, name, admins[0].peers[0])

    def deploy_chaincode(
        self, name: str, source: str, signature_policy: str | None = None, version: str = "1.0"
    ) -> int:
        """Package, install on every peer, approve for every org and commit ``name``.

        ``source`` is a folder with a Python contract (the peers run it) or HOST:PORT of a
        chaincode server (chaincode as a service). Returns the committed sequence; a new
        package for an existing name is an upgrade to the next sequence."""
        from heddle.chaincode.lifecycle import ccaas_package, package
        from heddle.chaincode.lifecycle.client import application_policy, deploy

        label = f"{name}_{version}"
        path = Path(source)
        if path.is_dir():
            package_bytes = package(label, "python", path)
        elif ":" in source and source.rpartition(":")[2].isdigit():
            package_bytes = ccaas_package(label, source)
        else:
            raise ValueError(f"{source!r} is neither a folder nor a HOST:PORT chaincode server address")
        admins, orderer = self._lifecycle_parties()
        current = self.committed_sequence(name)
        policy = application_policy(signature_policy or "")
        deploy(
            admins,
            orderer,
            self.spec.channel,
            name,
            package_bytes,
            version=version,
            sequence=current + 1,
            validation_parameter=policy,
        )
        return current + 1

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        pidfile.forget(self.data, [name])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        pidfile.forget(self.data, self.procs)
        self.procs.clear()
