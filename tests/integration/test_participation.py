"""The channel participation API through `heddle osnadmin`, over mutual TLS."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from heddle.channelconfig import genesis_block, load_configtx
from heddle.channelconfig.defaults import DEFAULT_PROFILE
from heddle.cli.main import main as heddle

pytestmark = pytest.mark.integration


def admin_args(net):
    tls = net.orderer_org_dir / "users" / "Admin@example.com" / "tls"
    return [
        "-o",
        f"{net.spec.host}:{net.spec.orderer_admin_port}",
        "--ca-file",
        str(net.orderer_tls_ca),
        "--client-cert",
        str(tls / "client.crt"),
        "--client-key",
        str(tls / "client.key"),
    ]


def osnadmin(net, capsys, *args) -> tuple[int, dict | None]:
    rc = heddle(["osnadmin", "channel", *args, *admin_args(net), "--no-status"])
    out = capsys.readouterr().out
    return rc, (json.loads(out) if out.strip() else None)


def test_join_list_remove_and_errors(network, capsys, tmp_path):
    net = network
    rc, listing = osnadmin(net, capsys, "list")
    assert rc == 0 and [c["name"] for c in listing["channels"]] == [net.spec.channel]
    assert listing["systemChannel"] is None

    rc, info = osnadmin(net, capsys, "list", "--channelID", net.spec.channel)
    assert rc == 0 and info["status"] == "active" and info["height"] >= 1

    # joining a channel the orderer already has: 405
    rc, err = osnadmin(
        net, capsys, "join", "--channelID", net.spec.channel, "--config-block", str(net.genesis_path)
    )
    assert rc == 1 and "already exists" in err["error"]

    # a file that is not a block: 400
    junk = tmp_path / "junk.block"
    junk.write_bytes(b"\x0a\x05hello-not-a-block")
    rc, err = osnadmin(net, capsys, "join", "--channelID", "x", "--config-block", str(junk))
    assert rc == 1
    assert "invalid config block" in err["error"] or "not a valid block" in err["error"]

    # a second channel: join, see it listed, remove it
    block = genesis_block(load_configtx(net.data / "configtx.yaml"), DEFAULT_PROFILE, "second", net.data)
    path = tmp_path / "second.block"
    path.write_bytes(block.SerializeToString())
    rc, info = osnadmin(net, capsys, "join", "--channelID", "second", "--config-block", str(path))
    assert rc == 0 and info["name"] == "second" and info["height"] == 1
    rc, listing = osnadmin(net, capsys, "list")
    assert sorted(c["name"] for c in listing["channels"]) == sorted([net.spec.channel, "second"])
    rc, _ = osnadmin(net, capsys, "remove", "--channelID", "second")
    assert rc == 0
    rc, err = osnadmin(net, capsys, "remove", "--channelID", "second")
    assert rc == 1 and "does not exist" in err["error"]
    rc, listing = osnadmin(net, capsys, "list")
    assert [c["name"] for c in listing["channels"]] == [net.spec.channel]


def test_admin_endpoint_requires_a_client_certificate(network):
    net = network
    ctx = ssl.create_default_context(cafile=str(net.orderer_tls_ca))
    url = f"https://{net.spec.host}:{net.spec.orderer_admin_port}/participation/v1/channels"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url, context=ctx, timeout=10).read()


def test_wrong_content_type_and_unknown_paths(network):
    net = network
    tls = net.orderer_org_dir / "users" / "Admin@example.com" / "tls"
    ctx = ssl.create_default_context(cafile=str(net.orderer_tls_ca))
    ctx.load_cert_chain(str(tls / "client.crt"), str(tls / "client.key"))
    base = f"https://{net.spec.host}:{net.spec.orderer_admin_port}/participation/v1/channels"
    req = urllib.request.Request(
        base, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert exc.value.code == 415
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(base + "/nosuch", context=ctx, timeout=10)
    assert exc.value.code == 404
    assert "does not exist" in json.loads(exc.value.read())["error"]
