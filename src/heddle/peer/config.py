"""core.yaml: the keys a Fabric peer operator knows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heddle.channelconfig.units import parse_duration
from heddle.common.config import ConfigFileError, YamlConfig
from heddle.common.tls import TlsFiles

STATE_BACKENDS = {"sqlite": "sqlite", "lmdb": "lmdb", "goleveldb": None, "leveldb": None, "": None}


@dataclass
class PeerNodeConfig:
    peer_id: str
    address: str
    listen_address: str
    msp_dir: Path
    mspid: str
    file_system_path: Path
    tls: TlsFiles
    client_key: Path | None
    client_cert: Path | None
    state_backend: str | None
    max_proposal_args_bytes: int = 4 * 1024 * 1024
    chaincode_execute_timeout: float = 30.0
    # Fabric's peer.validatorPoolSize: threads checking a block's transactions; 0 = one per CPU
    validator_pool_size: int = 0


def load_peer_config(path: str | Path) -> PeerNodeConfig:
    cfg = YamlConfig.load(path, "CORE")
    tls = TlsFiles(
        enabled=cfg.get_bool("peer.tls.enabled", False),
        cert=cfg.get_path("peer.tls.cert.file"),
        key=cfg.get_path("peer.tls.key.file"),
        root_cas=[p for p in [cfg.get_path("peer.tls.rootcert.file")] if p],
        client_auth_required=cfg.get_bool("peer.tls.clientAuthRequired", False),
        client_root_cas=cfg.get_paths("peer.tls.clientRootCAs.files"),
    )
    if tls.enabled and not (tls.cert and tls.key):
        raise ConfigFileError(f"{path}: peer.tls.enabled needs peer.tls.cert.file and peer.tls.key.file")
    backend_name = str(cfg.get("ledger.state.stateDatabase", "") or "").lower()
    if backend_name not in STATE_BACKENDS:
        raise ConfigFileError(
            f"{path}: ledger.state.stateDatabase {backend_name!r} is not supported "
            f"(use one of: {', '.join(k for k in STATE_BACKENDS if k)})"
        )
    msp_dir = cfg.get_path("peer.mspConfigPath")
    if msp_dir is None:
        raise ConfigFileError(f"{path}: peer.mspConfigPath is required")
    fs = cfg.get_path("peer.fileSystemPath")
    if fs is None:
        raise ConfigFileError(f"{path}: peer.fileSystemPath is required")
    address = str(cfg.get("peer.address", "127.0.0.1:7051"))
    pool_size = cfg.get_int("peer.validatorPoolSize", 0)
    if pool_size < 0:
        raise ConfigFileError(
            f"{path}: peer.validatorPoolSize must be 0 (one per CPU) or more, got {pool_size}"
        )
    return PeerNodeConfig(
        peer_id=str(cfg.get("peer.id", "peer0")),
        address=address,
        listen_address=str(cfg.get("peer.listenAddress", address)),
        msp_dir=msp_dir,
        mspid=str(cfg.require("peer.localMspId")),
        file_system_path=fs,
        tls=tls,
        client_key=cfg.get_path("peer.tls.clientKey.file"),
        client_cert=cfg.get_path("peer.tls.clientCert.file"),
        state_backend=STATE_BACKENDS[backend_name],
        max_proposal_args_bytes=cfg.get_int("peer.limits.maxProposalArgsBytes", 4 * 1024 * 1024),
        chaincode_execute_timeout=parse_duration(cfg.get("chaincode.executetimeout", "30s")),
        validator_pool_size=pool_size,
    )
