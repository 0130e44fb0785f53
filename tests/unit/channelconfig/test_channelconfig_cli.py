"""``heddle channel genesis`` and ``heddle channel inspect``."""

from __future__ import annotations

import argparse
import json

import pytest
from channelconfig_testnet import FIXTURES

from heddle.channelconfig import parse_config_block
from heddle.cli import CliError
from heddle.cli import channel as channel_cli


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="heddle")
    channel_cli.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_genesis_writes_a_block(network_dir, tmp_path):
    out = tmp_path / "genesis.block"
    assert (
        _run(
            "channel",
            "genesis",
            "--profile",
            "ChannelUsingRaft",
            "--config",
            str(network_dir / "configtx.yaml"),
            "--channel",
            "mychannel",
            "--output",
            str(out),
        )
        == 0
    )
    cc = parse_config_block(out.read_bytes())
    assert cc.channel_id == "mychannel" and cc.orderer.consensus_type == "etcdraft"


def test_genesis_finds_configtx_through_config_path(network_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        _run(
            "channel",
            "genesis",
            "--profile",
            "ChannelUsingRaft",
            "--configPath",
            str(network_dir),
            "--channel",
            "ch1",
            "--output",
            "g.block",
        )
        == 0
    )
    assert parse_config_block((tmp_path / "g.block").read_bytes()).channel_id == "ch1"


def test_genesis_errors_are_one_line(network_dir, tmp_path):
    with pytest.raises(CliError, match=r"configtx.yaml: Profiles\.Missing not found"):
        _run(
            "channel",
            "genesis",
            "--profile",
            "Missing",
            "--configPath",
            str(network_dir),
            "--channel",
            "mychannel",
            "--output",
            str(tmp_path / "x.block"),
        )
    with pytest.raises(CliError, match="cannot read"):
        _run(
            "channel",
            "genesis",
            "--profile",
            "P",
            "--configPath",
            str(tmp_path),
            "--channel",
            "mychannel",
            "--output",
            str(tmp_path / "x.block"),
        )


def test_inspect_prints_the_fabric_genesis_as_json(capsys):
    assert _run("channel", "inspect", str(FIXTURES / "block_0000.pb")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["channel_id"] == "mychannel"
    assert doc["orderer"]["batch_size"]["max_message_count"] == 500
    assert doc["orderer"]["consenters"] == ["127.0.0.1:7050"]
    assert doc["mod_policies"]["/Channel/OrdererAddresses"] == "/Channel/Orderer/Admins"
    assert doc["policies"]["/Channel/Application/Endorsement"]["rule"] == "MAJORITY Endorsement"


def test_inspect_text_and_errors(capsys):
    assert _run("channel", "inspect", "--format", "text", str(FIXTURES / "block_0000.pb")) == 0
    assert "consensus_type: etcdraft" in capsys.readouterr().out
    with pytest.raises(CliError, match="block 4 is not a config block"):
        _run("channel", "inspect", str(FIXTURES / "block_0004.pb"))
