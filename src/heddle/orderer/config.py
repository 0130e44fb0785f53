"""orderer.yaml: the keys a Fabric orderer operator knows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heddle.channelconfig.errors import ConfigError
from heddle.channelconfig.units import parse_size
from heddle.common.config import ConfigFileError, YamlConfig
from heddle.common.tls import TlsFiles


@dataclass
class OrdererNodeConfig:
    listen_address: str
    listen_port: int
    tls: TlsFiles
    local_msp_dir: Path
    local_msp_id: str
    ledger_dir: Path
    admin_listen: str | None
    admin_tls: TlsFiles
    participation_enabled: bool
    participation_max_body: int
    cluster: ClusterConfig | None = None
    wal_dir: Path | None = None
    snap_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.listen_address}:{self.listen_port}"


@dataclass
class ClusterConfig:
    """General.Cluster: the orderer-to-orderer (Raft) listener and the client side, mutual TLS."""

    listen_address: str
    listen_port: int
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    root_cas: list[Path]

    @property
    def address(self) -> str:
        return f"{self.listen_address}:{self.listen_port}"


def _tls(cfg: YamlConfig, prefix: str, client_auth_key: str, client_roots_key: str) -> TlsFiles:
    return TlsFiles(
        enabled=cfg.get_bool(f"{prefix}.Enabled", False),
        cert=cfg.get_path(f"{prefix}.Certificate"),
        key=cfg.get_path(f"{prefix}.PrivateKey"),
        root_cas=cfg.get_paths(f"{prefix}.RootCAs"),
        client_auth_required=cfg.get_bool(client_auth_key, False),
        client_root_cas=cfg.get_paths(client_roots_key),
    )


def load_orderer_config(path: str | Path) -> OrdererNodeConfig:
    cfg = YamlConfig.load(path, "ORDERER")
    tls = _tls(cfg, "General.TLS", "General.TLS.ClientAuthRequired", "General.TLS.ClientRootCAs")
    admin_tls = _tls(cfg, "Admin.TLS", "Admin.TLS.ClientAuthRequired", "Admin.TLS.ClientRootCAs")
    if tls.enabled and not (tls.cert and tls.key):
        raise ConfigFileError(f"{path}: General.TLS.Enabled needs General.TLS.Certificate and PrivateKey")
    method = str(cfg.get("General.BootstrapMethod", "none")).lower()
    if method not in ("none", ""):
        raise ConfigFileError(
            f"{path}: General.BootstrapMethod {method!r} is not supported; use 'none' and join "
            "channels through the channel participation API"
        )
    msp_dir = cfg.get_path("General.LocalMSPDir")
    if msp_dir is None:
        raise ConfigFileError(f"{path}: General.LocalMSPDir is required")
    ledger = cfg.get_path("FileLedger.Location")
    if ledger is None:
        raise ConfigFileError(f"{path}: FileLedger.Location is required")
    cluster = _cluster(cfg, tls, path)
    return OrdererNodeConfig(
        listen_address=str(cfg.get("General.ListenAddress", "127.0.0.1")),
        listen_port=cfg.get_int("General.ListenPort", 7050),
        tls=tls,
        local_msp_dir=msp_dir,
        local_msp_id=str(cfg.require("General.LocalMSPID")),
        ledger_dir=ledger,
        admin_listen=cfg.get("Admin.ListenAddress"),
        admin_tls=admin_tls,
        participation_enabled=cfg.get_bool("ChannelParticipation.Enabled", True),
        participation_max_body=_max_body(cfg),
        cluster=cluster,
        wal_dir=cfg.get_path("Consensus.WALDir") or ledger / "etcdraft" / "wal",
        snap_dir=cfg.get_path("Consensus.SnapDir") or ledger / "etcdraft" / "snapshot",
    )


def _cluster(cfg: YamlConfig, tls: TlsFiles, path) -> ClusterConfig | None:
    """General.Cluster, when a ListenPort is set; certificates default to General.TLS's."""
    port = cfg.get("General.Cluster.ListenPort")
    if port in (None, "", 0):
        return None
    server_cert = cfg.get_path("General.Cluster.ServerCertificate") or tls.cert
    server_key = cfg.get_path("General.Cluster.ServerPrivateKey") or tls.key
    client_cert = cfg.get_path("General.Cluster.ClientCertificate") or tls.cert
    client_key = cfg.get_path("General.Cluster.ClientPrivateKey") or tls.key
    roots = cfg.get_paths("General.Cluster.RootCAs") or list(tls.root_cas)
    for key, value in (
        ("ServerCertificate", server_cert),
        ("ServerPrivateKey", server_key),
        ("ClientCertificate", client_cert),
        ("ClientPrivateKey", client_key),
    ):
        if value is None:
            raise ConfigFileError(f"{path}: General.Cluster.{key} is required (or General.TLS's)")
    if not roots:
        raise ConfigFileError(f"{path}: General.Cluster.RootCAs is required (or General.TLS.RootCAs)")
    return ClusterConfig(
        listen_address=str(
            cfg.get("General.Cluster.ListenAddress", cfg.get("General.ListenAddress", "127.0.0.1"))
        ),
        listen_port=cfg.get_int("General.Cluster.ListenPort"),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        root_cas=roots,
    )


def _max_body(cfg: YamlConfig) -> int:
    value = cfg.get("ChannelParticipation.MaxRequestBodySize", "1 MB")
    try:
        return parse_size(value)
    except ConfigError as exc:
        raise ConfigFileError(f"{cfg.source.name}: ChannelParticipation.MaxRequestBodySize: {exc}") from exc
