"""The configtx.yaml of heddle's default local network (what ``heddle up`` writes).

Same shape as Fabric's test-network: orderer org ``OrdererOrg`` (OrdererMSP,
example.com) and peer orgs ``Org1MSP``, ``Org2MSP`` ... from cryptogen's default
topology, test-network's policies (Application Endorsement and LifecycleEndorsement
``MAJORITY Endorsement``), V2_0 capabilities. Two deliberate differences:
consensus is ``solo`` unless asked for ``etcdraft`` with N consenters, and the batch
settings are heddle's benchmark settings (MaxMessageCount 500, AbsoluteMaxBytes 10 MB,
PreferredMaxBytes 2 MB, BatchTimeout 2s, as in the Fabric v2.5.16 reference blocks)
rather than test-network's MaxMessageCount 10 / 99 MB / 512 KB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from heddle.channelconfig.configtx import ORDERER_TYPES
from heddle.channelconfig.errors import ConfigError

DEFAULT_PROFILE = "HeddleChannel"
ORDERER_DOMAIN = "example.com"


def _sig(rule: str) -> dict[str, str]:
    return {"Type": "Signature", "Rule": rule}


def _meta(rule: str) -> dict[str, str]:
    return {"Type": "ImplicitMeta", "Rule": rule}


def orderer_hostnames(count: int) -> list[str]:
    """Host names cryptogen's default topology gives orderers: orderer, orderer2, ..."""
    return [
        f"orderer.{ORDERER_DOMAIN}" if i == 1 else f"orderer{i}.{ORDERER_DOMAIN}" for i in range(1, count + 1)
    ]


def default_configtx(
    crypto_dir: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    consensus: str = "solo",
    orderers: int = 1,
    peer_orgs: int = 2,
    host: str = "127.0.0.1",
    orderer_ports: Sequence[int] | None = None,
    peer_ports: Sequence[int] | None = None,
    batch_timeout: str = "2s",
    max_message_count: int = 500,
    absolute_max_bytes: str = "10 MB",
    preferred_max_bytes: str = "2 MB",
) -> dict[str, Any]:
    """configtx.yaml content for the default network over cryptogen output in ``crypto_dir``.

    Paths are written relative to ``base_dir`` (the directory the file will live in)
    when given, absolute otherwise. Orderer i listens on ``orderer_ports[i]`` (default
    7050, 8050, ...); org i's anchor peer is peer0 on ``peer_ports[i]`` (7051, 9051, ...).
    """
    if consensus not in ORDERER_TYPES:
        raise ConfigError(f"consensus must be one of {', '.join(ORDERER_TYPES)}, got {consensus!r}")
    if orderers < 1 or (consensus == "solo" and orderers != 1):
        raise ConfigError("solo runs exactly one orderer; use etcdraft for more")
    crypto = Path(crypto_dir).absolute()

    def rel(p: Path) -> str:
        return os.path.relpath(p, base_dir) if base_dir is not None else str(p)

    o_ports = list(orderer_ports or [7050 + 1000 * i for i in range(orderers)])
    p_ports = list(peer_ports or [7051 + 2000 * i for i in range(peer_orgs)])
    if len(o_ports) != orderers or len(p_ports) != peer_orgs:
        raise ConfigError("need one port per orderer and one per peer org")
    orderer_org_dir = crypto / "ordererOrganizations" / ORDERER_DOMAIN
    endpoints = [f"{host}:{port}" for port in o_ports]
    orderer_org = {
        "Name": "OrdererOrg",
        "ID": "OrdererMSP",
        "MSPDir": rel(orderer_org_dir / "msp"),
        "Policies": {
            "Readers": _sig("OR('OrdererMSP.member')"),
            "Writers": _sig("OR('OrdererMSP.member')"),
            "Admins": _sig("OR('OrdererMSP.admin')"),
        },
        "OrdererEndpoints": list(endpoints),
    }
    orgs = []
    for i in range(1, peer_orgs + 1):
        mspid = f"Org{i}MSP"
        orgs.append(
            {
                "Name": mspid,
                "ID": mspid,
                "MSPDir": rel(crypto / "peerOrganizations" / f"org{i}.example.com" / "msp"),
                "Policies": {
                    "Readers": _sig(f"OR('{mspid}.admin', '{mspid}.peer', '{mspid}.client')"),
                    "Writers": _sig(f"OR('{mspid}.admin', '{mspid}.client')"),
                    "Admins": _sig(f"OR('{mspid}.admin')"),
                    "Endorsement": _sig(f"OR('{mspid}.peer')"),
                },
                "AnchorPeers": [{"Host": host, "Port": p_ports[i - 1]}],
            }
        )
    orderer: dict[str, Any] = {
        "OrdererType": consensus,
        "Addresses": list(endpoints),
        "BatchTimeout": batch_timeout,
        "BatchSize": {
            "MaxMessageCount": max_message_count,
            "AbsoluteMaxBytes": absolute_max_bytes,
            "PreferredMaxBytes": preferred_max_bytes,
        },
        "Organizations": [orderer_org],
        "Policies": {
            "Readers": _meta("ANY Readers"),
            "Writers": _meta("ANY Writers"),
            "Admins": _meta("MAJORITY Admins"),
            "BlockValidation": _meta("ANY Writers"),
        },
        "Capabilities": {"V2_0": True},
    }
    if consensus == "etcdraft":
        consenters = []
        for name, port in zip(orderer_hostnames(orderers), o_ports, strict=True):
            tls = orderer_org_dir / "orderers" / name / "tls" / "server.crt"
            consenters.append(
                {"Host": host, "Port": port, "ClientTLSCert": rel(tls), "ServerTLSCert": rel(tls)}
            )
        orderer["EtcdRaft"] = {"Consenters": consenters}
    profile = {
        "Policies": {
            "Readers": _meta("ANY Readers"),
            "Writers": _meta("ANY Writers"),
            "Admins": _meta("MAJORITY Admins"),
        },
        "Capabilities": {"V2_0": True},
        "Orderer": orderer,
        "Application": {
            "Organizations": orgs,
            "Policies": {
                "Readers": _meta("ANY Readers"),
                "Writers": _meta("ANY Writers"),
                "Admins": _meta("MAJORITY Admins"),
                "LifecycleEndorsement": _meta("MAJORITY Endorsement"),
                "Endorsement": _meta("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_0": True},
        },
    }
    return {"Profiles": {DEFAULT_PROFILE: profile}}


def write_default_configtx(
    path: str | os.PathLike[str], crypto_dir: str | os.PathLike[str], **options: Any
) -> Path:
    """Write ``default_configtx(...)`` to ``path`` (a file or a directory); return the file."""
    out = Path(path)
    if out.is_dir():
        out = out / "configtx.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = default_configtx(crypto_dir, base_dir=out.parent.absolute(), **options)
    header = (
        "# configtx.yaml for heddle's default local network (written by heddle).\n"
        f"# Generate the genesis block: heddle channel genesis --profile "
        f"{DEFAULT_PROFILE} --config {out.name} --channel mychannel --output genesis.block\n"
    )
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return out
