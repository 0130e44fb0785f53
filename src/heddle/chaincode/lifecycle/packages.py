"""Chaincode packages in Fabric's format, and the peer's store of installed packages.

A package is a gzipped tar holding ``metadata.json`` ({"type": ..., "label": ...}) and
``code.tar.gz``. For chaincode as a service (type "ccaas") code.tar.gz holds
``connection.json`` (address, dial_timeout, tls_required, ...); for a local package it
holds the source. The package id is ``label:hex(sha256(package file bytes))``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from heddle.crypto.hashing import sha256

METADATA_FILE = "metadata.json"
CODE_FILE = "code.tar.gz"
CONNECTION_FILE = "connection.json"
CCAAS = "ccaas"

# Fabric's rule for labels: alphanumerics first, then alphanumerics and '.+-_'.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# a package larger than this is refused before it is unpacked (Fabric's gRPC default is 100 MB)
MAX_PACKAGE_BYTES = 100 * 1024 * 1024
_MAX_UNPACKED_BYTES = 512 * 1024 * 1024


class PackageError(ValueError):
    """A chaincode package that cannot be built or parsed; the message says what is wrong."""


class AlreadyInstalled(PackageError):
    """The same package (same id) is already installed on this peer."""


def check_label(label: str) -> None:
    if not label or not _LABEL.match(label):
        raise PackageError(
            f"invalid label '{label}'. Label must be non-empty, can only consist of alphanumerics, "
            "symbols from '.+-_', and can only begin with alphanumerics"
        )


def package_id(label: str, package_bytes: bytes) -> str:
    """Fabric's package id: the label, a colon, and the hex SHA-256 of the package file."""
    return f"{label}:{sha256(package_bytes).hex()}"


# ----- building -----


def _tar_gz(entries: list[tuple[str, bytes]]) -> bytes:
    """A deterministic .tar.gz (fixed mtimes and owners) so one input gives one package id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _source_entries(path: Path) -> list[tuple[str, bytes]]:
    if path.is_file():
        return [(f"src/{path.name}", path.read_bytes())]
    if not path.is_dir():
        raise PackageError(f"chaincode path {path} does not exist")
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git", "node_modules", ".venv"))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = Path(root) / name
            rel = full.relative_to(path).as_posix()
            entries.append((f"src/{rel}", full.read_bytes()))
    if not entries:
        raise PackageError(f"chaincode path {path} holds no files")
    return entries


def package(label: str, type: str, path: str | os.PathLike[str]) -> bytes:  # noqa: A002 - Fabric's name
    """A chaincode package of the source at ``path`` (a directory or a file), under ``src/``."""
    check_label(label)
    kind = type.lower()
    if not kind:
        raise PackageError("chaincode type (--lang) is required")
    if kind == CCAAS:
        raise PackageError("a ccaas package is built from an address: use ccaas_package()")
    code = _tar_gz(_source_entries(Path(path)))
    metadata = {"path": str(path), "type": kind, "label": label}
    return _tar_gz([(METADATA_FILE, json.dumps(metadata).encode()), (CODE_FILE, code)])


def connection_json(
    address: str,
    *,
    dial_timeout: str = "10s",
    tls_required: bool = False,
    client_auth_required: bool = False,
    client_key: str = "",
    client_cert: str = "",
    root_cert: str = "",
) -> dict[str, Any]:
    """The connection.json fields of Fabric's ccaas builder (PEM contents, not file names)."""
    if not address or ":" not in address:
        raise PackageError(f"chaincode address {address!r} must be host:port")
    return {
        "address": address,
        "dial_timeout": dial_timeout,
        "tls_required": tls_required,
        "client_auth_required": client_auth_required,
        "client_key": client_key,
        "client_cert": client_cert,
        "root_cert": root_cert,
    }


def ccaas_package(label: str, address: str, **connection: Any) -> bytes:
    """A chaincode-as-a-service package: code.tar.gz holds connection.json for ``address``."""
    check_label(label)
    conn = connection_json(address, **connection)
    code = _tar_gz([(CONNECTION_FILE, json.dumps(conn, indent=2).encode())])
    metadata = {"type": CCAAS, "label": label}
    return _tar_gz([(METADATA_FILE, json.dumps(metadata).encode()), (CODE_FILE, code)])


# ----- parsing -----


@dataclass(frozen=True)
class ParsedPackage:
    label: str
    type: str
    metadata: dict[str, Any]
    code: bytes  # the bytes of code.tar.gz
    connection: dict[str, Any] | None  # ccaas only


def _read_tar(data: bytes, what: str) -> dict[str, bytes]:
    """Regular files of a .tar.gz by name; refuses links, absolute and '..' paths."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise PackageError(f"{what} is not a gzip file: {exc}") from exc
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise PackageError(f"{what}: entry {member.name!r} is not a regular file")
                if name.is_absolute() or ".." in name.parts:
                    raise PackageError(f"{what}: entry {member.name!r} points outside the package")
                total += member.size
                if total > _MAX_UNPACKED_BYTES:
                    raise PackageError(f"{what} unpacks to more than {_MAX_UNPACKED_BYTES} bytes")
                f = tar.extractfile(member)
                out[name.as_posix().removeprefix("./")] = f.read() if f else b""
    except tarfile.TarError as exc:
        raise PackageError(f"{what} is not a tar archive: {exc}") from exc
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{what}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PackageError(f"{what}: not a JSON object")
    return value


def parse_package(data: bytes) -> ParsedPackage:
    """Check a package's structure; PackageError names the missing or malformed part."""
    if not data:
        raise PackageError("chaincode install package is empty")
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageError(f"chaincode install package is larger than {MAX_PACKAGE_BYTES} bytes")
    files = _read_tar(data, "chaincode install package")
    if METADATA_FILE not in files:
        raise PackageError(f"chaincode install package has no {METADATA_FILE}")
    if CODE_FILE not in files:
        raise PackageError(f"chaincode install package has no {CODE_FILE}")
    metadata = _json_object(files[METADATA_FILE], f"could not unmarshal {METADATA_FILE}")
    label, kind = metadata.get("label"), metadata.get("type")
    if not isinstance(label, str):
        raise PackageError(f"{METADATA_FILE} has no string 'label'")
    check_label(label)
    if not isinstance(kind, str) or not kind:
        raise PackageError(f"{METADATA_FILE} has no string 'type'")
    code_files = _read_tar(files[CODE_FILE], CODE_FILE)
    connection = None
    if kind.lower() == CCAAS:
        if CONNECTION_FILE not in code_files:
            raise PackageError(f"ccaas package: {CODE_FILE} has no {CONNECTION_FILE}")
        connection = _json_object(code_files[CONNECTION_FILE], f"ccaas package: {CONNECTION_FILE}")
        if not isinstance(connection.get("address"), str):
            raise PackageError(f"ccaas package: {CONNECTION_FILE} has no string 'address'")
    return ParsedPackage(label, kind.lower(), metadata, files[CODE_FILE], connection)


# ----- the peer's store -----


@dataclass(frozen=True)
class InstalledPackage:
    package_id: str
    label: str
    type: str  # "ccaas", "python", "node", ...
    path: Path  # the unpacked code (for ccaas: the folder holding connection.json)
    connection: dict[str, Any] | None  # connection.json for ccaas, else None
    package_file: Path


def _file_stem(pkg_id: str) -> str:
    label, _, digest = pkg_id.partition(":")
    return f"{label}.{digest}"


class PackageStore:
    """Installed chaincode packages under one directory (the peer's lifecycle/chaincodes).

    Each package is kept as ``<label>.<sha256>.tar.gz`` with its code unpacked next to it
    in ``<label>.<sha256>/``. Safe for concurrent use in one process.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def install(self, package_bytes: bytes) -> str:
        """Install a package and return its id; AlreadyInstalled if it is there already."""
        parsed = parse_package(package_bytes)
        pkg_id = package_id(parsed.label, package_bytes)
        stem = _file_stem(pkg_id)
        with self._lock:
            target = self.directory / f"{stem}.tar.gz"
            if target.exists():
                raise AlreadyInstalled(f"chaincode already successfully installed (package ID '{pkg_id}')")
            unpacked = self.directory / stem
            tmp = self.directory / f".{stem}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            code_dir = tmp / "code"
            code_dir.mkdir(parents=True)
            for name, data in _read_tar(parsed.code, CODE_FILE).items():
                dest = code_dir / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            (tmp / METADATA_FILE).write_text(json.dumps(parsed.metadata))
            shutil.rmtree(unpacked, ignore_errors=True)
            tmp.rename(unpacked)
            part = self.directory / f".{stem}.tar.gz.tmp"
            part.write_bytes(package_bytes)
            part.rename(target)  # the package file appearing is the commit point
        return pkg_id

    def _load(self, package_file: Path) -> InstalledPackage | None:
        stem = package_file.name.removesuffix(".tar.gz")
        label, _, digest = stem.rpartition(".")
        unpacked = self.directory / stem
        try:
            metadata = json.loads((unpacked / METADATA_FILE).read_text())
        except (OSError, ValueError):
            return None
        kind = str(metadata.get("type", "")).lower()
        connection = None
        code = unpacked / "code"
        if kind == CCAAS:
            try:
                connection = json.loads((code / CONNECTION_FILE).read_text())
            except (OSError, ValueError):
                return None
        return InstalledPackage(f"{label}:{digest}", label, kind, code, connection, package_file)

    def installed(self) -> list[InstalledPackage]:
        """Every installed package, sorted by package id."""
        out = []
        for f in sorted(self.directory.glob("*.tar.gz")):
            pkg = self._load(f)
            if pkg is not None:
                out.append(pkg)
        return sorted(out, key=lambda p: p.package_id)

    def get(self, pkg_id: str) -> InstalledPackage | None:
        if ":" not in pkg_id or "/" in pkg_id or pkg_id.startswith("."):
            return None
        f = self.directory / f"{_file_stem(pkg_id)}.tar.gz"
        return self._load(f) if f.is_file() else None

    def package_bytes(self, pkg_id: str) -> bytes | None:
        pkg = self.get(pkg_id)
        return pkg.package_file.read_bytes() if pkg else None
