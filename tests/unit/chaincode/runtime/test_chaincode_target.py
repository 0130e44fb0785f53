"""From installed packages and connection.json to ChaincodeTargets."""

from __future__ import annotations

from pathlib import Path

import pytest

from heddle.chaincode.lifecycle.packages import PackageStore, ccaas_package, package
from heddle.chaincode.runtime import ChaincodeError, ChaincodeTarget, parse_duration, target_from_package
from heddle.chaincode.runtime.launcher import entry_script
from heddle.chaincode.runtime.target import unpack_code

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "asset_transfer_basic" / "chaincode"


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), (3, 3.0)]
)
def test_durations_are_read_like_go(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "10s garbage"])
def test_bad_durations_name_the_value(text):
    with pytest.raises(ChaincodeError, match="invalid duration"):
        parse_duration(text)


def test_connection_json_fields_become_a_ccaas_target():
    target = ChaincodeTarget.from_connection(
        "basic",
        "basic_1:ab",
        {
            "address": "cc.example.com:9999",
            "dial_timeout": "3s",
            "tls_required": True,
            "client_auth_required": True,
            "client_key": "KEY",
            "client_cert": "CERT",
            "root_cert": "ROOT",
        },
    )
    assert (target.kind, target.address, target.dial_timeout) == ("ccaas", "cc.example.com:9999", 3.0)
    assert (target.client_key, target.client_cert, target.root_cert) == (b"KEY", b"CERT", b"ROOT")
    assert target.key == "basic_1:ab"
    assert not target.shared_stream
    shared = ChaincodeTarget.from_connection("basic", "basic_1:ab", {"address": "x:1", "shared_stream": True})
    assert shared.shared_stream


@pytest.mark.parametrize(
    ("connection", "problem"),
    [
        ({}, "no address"),
        ({"address": "x:1", "tls_required": True}, "no root_cert"),
        (
            {"address": "x:1", "tls_required": True, "root_cert": "R", "client_auth_required": True},
            "client auth",
        ),
    ],
)
def test_incomplete_connection_json_is_refused(connection, problem):
    with pytest.raises(ChaincodeError, match=problem):
        ChaincodeTarget.from_connection("basic", "basic_1:ab", connection)


def test_installed_python_package_runs_from_its_unpacked_source(tmp_path):
    store = PackageStore(tmp_path / "store")
    pkg_id = store.install(package("basic_1.0", "python", EXAMPLE))
    target = target_from_package("basic", store.get(pkg_id))
    assert (target.name, target.package_id, target.kind) == ("basic", pkg_id, "process")
    assert entry_script(target.code_dir).name == "asset_transfer.py"


def test_installed_ccaas_package_is_dialled_at_its_address(tmp_path):
    store = PackageStore(tmp_path / "store")
    pkg_id = store.install(ccaas_package("basic_1.0", "127.0.0.1:9999"))
    target = target_from_package("basic", store.get(pkg_id))
    assert (target.kind, target.address, target.package_id) == ("ccaas", "127.0.0.1:9999", pkg_id)


def test_a_package_file_is_unpacked_once_into_the_work_dir(tmp_path):
    pkg_file = tmp_path / "basic.tar.gz"
    pkg_file.write_bytes(package("basic_1.0", "python", EXAMPLE))
    code = unpack_code(pkg_file, tmp_path / "work")
    assert (code / "asset_transfer.py").is_file()
    assert unpack_code(pkg_file, tmp_path / "work") == code


def test_unsupported_package_type_is_named():
    class Installed:
        package_id, type, path, connection = "x:1", "golang", "/nowhere", None

    with pytest.raises(ChaincodeError, match="package type 'golang' cannot run here"):
        target_from_package("basic", Installed())


def test_entry_script_prefers_main_py_and_refuses_ambiguity(tmp_path):
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.py").write_text("")
    with pytest.raises(ChaincodeError, match=r"needs a main\.py"):
        entry_script(tmp_path)
    (tmp_path / "main.py").write_text("")
    assert entry_script(tmp_path).name == "main.py"
