"""What the peer runs for a chaincode: a service it dials, or a local process it starts.

``target_from_package`` turns an installed package (lifecycle's InstalledPackage: a
``connection.json`` for chaincode-as-a-service, or Python code) into a ChaincodeTarget.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from fabric_protos.peer import chaincode_event_pb2, proposal_response_pb2

from heddle.channelconfig import units as channel_units
from heddle.channelconfig.errors import ConfigError

CCAAS_TYPES = ("ccaas", "external")
PROCESS_TYPES = ("python",)


class ChaincodeError(Exception):
    """A chaincode could not run a transaction; the message is fit for the client."""


class ChaincodeUnresponsive(ChaincodeError):
    """The chaincode accepted a stream but never registered on it: its event loop is stuck."""


@dataclass(frozen=True)
class ChaincodeTarget:
    """How to reach one chaincode package.

    kind "ccaas": the peer dials ``address`` (TLS when ``tls_required``; PEM contents in
    ``root_cert``, ``client_cert``, ``client_key`` as in Fabric's connection.json).
    kind "process": the peer starts the Python code in ``code_dir`` as a chaincode server.

    ``shared_stream`` multiplexes all transactions on one stream as Fabric's peer does;
    off by default, each transaction gets a stream of its own (see connection.py for why).
    connection.json may set it (``"shared_stream": true``, a heddle extension).
    """

    name: str
    package_id: str
    kind: Literal["ccaas", "process"]
    address: str = ""
    dial_timeout: float = 10.0
    tls_required: bool = False
    client_auth_required: bool = False
    client_key: bytes = b""
    client_cert: bytes = b""
    root_cert: bytes = b""
    code_dir: Path | None = None
    shared_stream: bool = False

    @property
    def key(self) -> str:
        """One running connection per package (or per name when there is no package id)."""
        return self.package_id or self.name

    @classmethod
    def from_connection(cls, name: str, package_id: str, connection: dict[str, Any]) -> ChaincodeTarget:
        """A target from Fabric's ccaas connection.json fields."""
        address = connection.get("address")
        if not isinstance(address, str) or not address:
            raise ChaincodeError(f"chaincode {name}: connection.json has no address")
        tls = bool(connection.get("tls_required", False))
        client_auth = bool(connection.get("client_auth_required", False))
        target = cls(
            name=name,
            package_id=package_id,
            kind="ccaas",
            address=address,
            dial_timeout=parse_duration(connection.get("dial_timeout", "10s")),
            tls_required=tls,
            client_auth_required=client_auth,
            client_key=_pem(connection.get("client_key")),
            client_cert=_pem(connection.get("client_cert")),
            root_cert=_pem(connection.get("root_cert")),
            shared_stream=bool(connection.get("shared_stream", False)),
        )
        if tls and not target.root_cert:
            raise ChaincodeError(f"chaincode {name}: connection.json requires TLS but has no root_cert")
        if client_auth and not (target.client_cert and target.client_key):
            raise ChaincodeError(
                f"chaincode {name}: connection.json requires client auth but lacks client_cert/client_key"
            )
        return target


@dataclass(frozen=True)
class ChaincodeResult:
    response: proposal_response_pb2.Response
    event: chaincode_event_pb2.ChaincodeEvent | None = None


class InstalledPackageLike(Protocol):
    package_id: str
    type: str
    path: Any
    connection: dict | None


def target_from_package(
    name: str, package: InstalledPackageLike, work_dir: Path | str | None = None
) -> ChaincodeTarget:
    """Map an installed package (lifecycle's InstalledPackage) to a target for chaincode
    ``name``. ``package.path`` is the unpacked code folder; when it is the package file
    instead, the code is unpacked once per package id under ``work_dir``."""
    kind = (package.type or "").lower()
    if kind in CCAAS_TYPES:
        connection = package.connection
        if connection is None:
            connection = read_package_connection(Path(package.path))
        return ChaincodeTarget.from_connection(name, package.package_id, connection)
    if kind in PROCESS_TYPES:
        path = Path(package.path)
        if path.is_dir():
            code_dir = _code_root(path)
        elif work_dir is None:
            raise ChaincodeError(f"chaincode {name}: package {package.package_id} is not unpacked")
        else:
            code_dir = unpack_code(path, Path(work_dir) / _safe(package.package_id))
        return ChaincodeTarget(name=name, package_id=package.package_id, kind="process", code_dir=code_dir)
    raise ChaincodeError(
        f"chaincode {name}: package type {package.type!r} cannot run here "
        f"(supported: {', '.join(CCAAS_TYPES + PROCESS_TYPES)})"
    )


def _inner_code(package_file: Path) -> bytes:
    with tarfile.open(package_file, "r:gz") as outer:
        member = outer.extractfile("code.tar.gz")
        if member is None:
            raise ChaincodeError(f"package {package_file.name} has no code.tar.gz")
        return member.read()


def read_package_connection(package_file: Path) -> dict[str, Any]:
    """connection.json from a ccaas package (inside code.tar.gz, as Fabric's builder expects)."""
    with tarfile.open(fileobj=io.BytesIO(_inner_code(package_file)), mode="r:gz") as code:
        member = code.extractfile("connection.json")
        if member is None:
            raise ChaincodeError(f"package {package_file.name} has no connection.json")
        return json.loads(member.read())


def unpack_code(package_file: Path, dest: Path) -> Path:
    """Extract code.tar.gz of a Fabric-style package into ``dest`` (idempotent); returns
    the code folder (the single top folder when the tar has one, e.g. "src/")."""
    marker = dest / ".unpacked"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(_inner_code(package_file)), mode="r:gz") as code:
            code.extractall(dest, filter="data")
        marker.touch()
    return _code_root(dest)


def _code_root(folder: Path) -> Path:
    """The folder itself, or its only subfolder (packages keep sources under "src/")."""
    entries = [p for p in folder.iterdir() if p.name != ".unpacked"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration ("10s", "1m30s", "500ms") or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    try:
        return channel_units.parse_duration(str(value))
    except ConfigError as exc:
        raise ChaincodeError(f"invalid duration {value!r}: use a form like '10s' or '1m'") from exc


def _pem(value: Any) -> bytes:
    if not value:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def _safe(package_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", package_id)
