"""Chaincode packages: Fabric's format, package ids, the install store, malformed input."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from heddle.chaincode.lifecycle import (
    AlreadyInstalled,
    PackageError,
    PackageStore,
    ccaas_package,
    package,
    package_id,
    parse_package,
)


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def _tgz(entries: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "cc"
    (src / "pkg").mkdir(parents=True)
    (src / "chaincode.py").write_text("print('hello')\n")
    (src / "pkg" / "__init__.py").write_text("")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    return src


def test_package_has_fabric_layout_with_source_under_src(source):
    data = package("basic_1.0", "python", source)
    top = _members(data)
    assert set(top) == {"metadata.json", "code.tar.gz"}
    meta = json.loads(top["metadata.json"])
    assert meta["type"] == "python" and meta["label"] == "basic_1.0"
    code = _members(top["code.tar.gz"])
    assert set(code) == {"src/chaincode.py", "src/pkg/__init__.py"}  # no bytecode caches


def test_package_is_deterministic_so_the_id_is_stable(source):
    assert package("basic_1.0", "python", source) == package("basic_1.0", "python", source)


def test_package_id_is_label_and_sha256_of_package_file(source):
    data = package("basic_1.0", "python", source)
    assert package_id("basic_1.0", data) == "basic_1.0:" + hashlib.sha256(data).hexdigest()


def test_ccaas_package_carries_connection_json():
    data = ccaas_package("basic_1.0", "127.0.0.1:9999", dial_timeout="5s", tls_required=False)
    top = _members(data)
    assert json.loads(top["metadata.json"]) == {"type": "ccaas", "label": "basic_1.0"}
    conn = json.loads(_members(top["code.tar.gz"])["connection.json"])
    assert conn["address"] == "127.0.0.1:9999"
    assert conn["dial_timeout"] == "5s" and conn["tls_required"] is False
    parsed = parse_package(data)
    assert parsed.type == "ccaas" and parsed.connection["address"] == "127.0.0.1:9999"


@pytest.mark.parametrize("label", ["", "_x", "has space", "a/b", "a:b"])
def test_bad_labels_are_refused_with_fabric_rule(label, source):
    with pytest.raises(PackageError, match="invalid label"):
        package(label, "python", source)


def test_store_installs_and_lists_and_unpacks(tmp_path, source):
    store = PackageStore(tmp_path / "store")
    data = package("basic_1.0", "python", source)
    pkg_id = store.install(data)
    assert pkg_id == package_id("basic_1.0", data)
    [pkg] = store.installed()
    assert pkg.package_id == pkg_id and pkg.label == "basic_1.0" and pkg.type == "python"
    assert (pkg.path / "src" / "chaincode.py").read_text() == "print('hello')\n"
    assert pkg.connection is None
    assert store.get(pkg_id) == pkg
    assert store.package_bytes(pkg_id) == data
    # a fresh store over the same directory sees it (the peer restarting)
    assert PackageStore(tmp_path / "store").get(pkg_id) == pkg


def test_store_ccaas_package_exposes_connection(tmp_path):
    store = PackageStore(tmp_path / "store")
    pkg_id = store.install(ccaas_package("svc_1", "localhost:7777"))
    pkg = store.get(pkg_id)
    assert pkg.type == "ccaas" and pkg.connection["address"] == "localhost:7777"


def test_reinstalling_same_package_is_an_error(tmp_path, source):
    store = PackageStore(tmp_path / "store")
    data = package("basic_1.0", "python", source)
    pkg_id = store.install(data)
    with pytest.raises(
        AlreadyInstalled, match=f"chaincode already successfully installed \\(package ID '{pkg_id}'\\)"
    ):
        store.install(data)


def test_unknown_package_id_is_none(tmp_path):
    store = PackageStore(tmp_path / "store")
    assert store.get("nope:00") is None
    assert store.get("../../etc:passwd") is None
    assert store.installed() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"not a gzip", "is not a gzip file"),
        (gzip.compress(b"not a tar" * 100, mtime=0), "is not a tar archive"),
        (_tgz({"code.tar.gz": _tgz({"a": b"x"})}), "has no metadata.json"),
        (_tgz({"metadata.json": b'{"type":"python","label":"x"}'}), "has no code.tar.gz"),
        (_tgz({"metadata.json": b"{nope", "code.tar.gz": _tgz({})}), "could not unmarshal metadata.json"),
        (_tgz({"metadata.json": b'{"type":"python"}', "code.tar.gz": _tgz({})}), "no string 'label'"),
        (_tgz({"metadata.json": b'{"label":"x"}', "code.tar.gz": _tgz({})}), "no string 'type'"),
        (
            _tgz({"metadata.json": b'{"type":"ccaas","label":"x"}', "code.tar.gz": _tgz({})}),
            "no connection.json",
        ),
        (
            _tgz(
                {
                    "metadata.json": b'{"type":"ccaas","label":"x"}',
                    "code.tar.gz": _tgz({"connection.json": b"{}"}),
                }
            ),
            "no string 'address'",
        ),
        (
            _tgz({"metadata.json": b'{"type":"python","label":"x"}', "code.tar.gz": _tgz({"../evil": b"x"})}),
            "points outside the package",
        ),
        (
            _tgz({"metadata.json": b'{"type":"python","label":"x"}', "code.tar.gz": b"garbage"}),
            "code.tar.gz is not a gzip file",
        ),
    ],
)
def test_malformed_packages_give_precise_errors(tmp_path, data, message):
    with pytest.raises(PackageError, match=message):
        parse_package(data)
    with pytest.raises(PackageError, match=message):
        PackageStore(tmp_path / "store").install(data)
    assert PackageStore(tmp_path / "store").installed() == []


def test_symlinks_in_code_are_refused():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    data = _tgz({"metadata.json": b'{"type":"python","label":"x"}', "code.tar.gz": raw.getvalue()})
    with pytest.raises(PackageError, match="is not a regular file"):
        parse_package(data)


def test_installed_packages_map_to_runtime_targets(tmp_path, source):
    """The chaincode runtime runs what the store unpacks: a process for Python source, a
    service dial for ccaas."""
    from heddle.chaincode.runtime.target import target_from_package

    store = PackageStore(tmp_path / "store")
    local = store.get(store.install(package("basic_1.0", "python", source)))
    target = target_from_package("basic", local)
    assert target.kind == "process" and (target.code_dir / "chaincode.py").is_file()
    svc = store.get(store.install(ccaas_package("svc_1", "127.0.0.1:7777")))
    target = target_from_package("svc", svc)
    assert target.kind == "ccaas" and target.address == "127.0.0.1:7777"
