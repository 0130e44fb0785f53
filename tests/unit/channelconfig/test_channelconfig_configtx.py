"""configtx.yaml validation: every error names the key at fault."""

from __future__ import annotations

import copy

import pytest
import yaml
from channelconfig_testnet import TEST_NETWORK_CONFIGTX

from heddle.channelconfig import ConfigError, load_configtx, profile_spec
from heddle.channelconfig.units import format_duration, parse_duration, parse_size

PROFILE = "Profiles.ChannelUsingRaft"


@pytest.fixture
def configtx(network_dir) -> dict:
    return copy.deepcopy(load_configtx(network_dir / "configtx.yaml"))


def _orderer(c):
    return c["Profiles"]["ChannelUsingRaft"]["Orderer"]


def _expect(c, network_dir, message):
    with pytest.raises(ConfigError) as err:
        profile_spec(c, "ChannelUsingRaft", network_dir)
    assert str(err.value) == message


def test_merge_keys_and_anchors_resolve(configtx, network_dir):
    spec = profile_spec(configtx, "ChannelUsingRaft", network_dir)
    assert spec.orderer.batch_timeout == "2s"
    assert spec.orderer.absolute_max_bytes == 10 * 1024 * 1024
    assert [o.mspid for o in spec.application.organizations] == ["Org1MSP", "Org2MSP"]
    assert spec.capabilities == ["V2_0"]
    assert spec.application.policies["Endorsement"].rule == "MAJORITY Endorsement"


def test_max_message_count_must_be_positive(configtx, network_dir):
    _orderer(configtx)["BatchSize"]["MaxMessageCount"] = 0
    _expect(
        configtx,
        network_dir,
        f"configtx.yaml: {PROFILE}.Orderer.BatchSize.MaxMessageCount must be a positive integer",
    )


def test_unknown_keys_are_named(configtx, network_dir):
    _orderer(configtx)["BatchSize"]["MaxMesageCount"] = 10
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Orderer\.BatchSize\.MaxMesageCount is "
        "not a known key",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_orderer_type_must_be_supported(configtx, network_dir):
    _orderer(configtx)["OrdererType"] = "kafka"
    _expect(
        configtx,
        network_dir,
        f"configtx.yaml: {PROFILE}.Orderer.OrdererType must be one of solo, etcdraft, got 'kafka'",
    )


def test_batch_timeout_must_be_a_duration(configtx, network_dir):
    _orderer(configtx)["BatchTimeout"] = "2 seconds"
    _expect(
        configtx,
        network_dir,
        f"configtx.yaml: {PROFILE}.Orderer.BatchTimeout must be a duration like '2s' or '500ms'",
    )


def test_preferred_bytes_cannot_exceed_absolute(configtx, network_dir):
    _orderer(configtx)["BatchSize"]["PreferredMaxBytes"] = "20 MB"
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Orderer\.BatchSize\.PreferredMaxBytes "
        r"\(20971520\) must not exceed AbsoluteMaxBytes",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_etcdraft_needs_consenters_with_readable_certs(configtx, network_dir):
    consenter = _orderer(configtx)["EtcdRaft"]["Consenters"][0]
    consenter["ClientTLSCert"] = "missing/server.crt"
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Orderer\.EtcdRaft\.Consenters\[0\]"
        r"\.ClientTLSCert cannot read",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)
    _orderer(configtx)["EtcdRaft"]["Consenters"] = []
    _expect(
        configtx,
        network_dir,
        f"configtx.yaml: {PROFILE}.Orderer.EtcdRaft.Consenters must list at least one consenter",
    )


def test_consenter_port_must_be_a_port(configtx, network_dir):
    _orderer(configtx)["EtcdRaft"]["Consenters"][0]["Port"] = 70500
    _expect(
        configtx,
        network_dir,
        f"configtx.yaml: {PROFILE}.Orderer.EtcdRaft.Consenters[0].Port must be a port number (1-65535)",
    )


def test_policy_rules_are_checked(configtx, network_dir):
    app = configtx["Profiles"]["ChannelUsingRaft"]["Application"]
    app["Policies"] = dict(app["Policies"], Admins={"Type": "ImplicitMeta", "Rule": "MOST Admins"})
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Application\.Policies\.Admins\.Rule "
        "must be '<ANY|ALL|MAJORITY> <SubPolicy>'",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_signature_rules_are_parsed(configtx, network_dir):
    org = dict(configtx["Profiles"]["ChannelUsingRaft"]["Application"]["Organizations"][0])
    org["Policies"] = dict(org["Policies"], Admins={"Type": "Signature", "Rule": "OR('Org1MSP"})
    configtx["Profiles"]["ChannelUsingRaft"]["Application"]["Organizations"][0] = org
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Application\.Organizations\[0\]\."
        r"Policies\.Admins\.Rule is not a signature policy",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_msp_dir_must_exist(configtx, network_dir):
    org = dict(configtx["Profiles"]["ChannelUsingRaft"]["Orderer"]["Organizations"][0])
    org["MSPDir"] = "nowhere/msp"
    configtx["Profiles"]["ChannelUsingRaft"]["Orderer"]["Organizations"][0] = org
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Orderer\.Organizations\[0\]\.MSPDir is "
        "not a directory",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_unknown_profile_lists_the_profiles(configtx, network_dir):
    with pytest.raises(
        ConfigError,
        match=r"Profiles\.Nope not found \(profiles: "
        r"ChannelUsingRaft\)",
    ):
        profile_spec(configtx, "Nope", network_dir)


def test_system_channel_profiles_are_refused(configtx, network_dir):
    configtx["Profiles"]["ChannelUsingRaft"]["Consortiums"] = {"SampleConsortium": {}}
    with pytest.raises(
        ConfigError,
        match=rf"{PROFILE}\.Consortiums belongs to a system "
        "channel",
    ):
        profile_spec(configtx, "ChannelUsingRaft", network_dir)


def test_unknown_top_level_key_is_named(tmp_path):
    doc = yaml.safe_load(TEST_NETWORK_CONFIGTX)
    doc["Profile"] = {}
    (tmp_path / "configtx.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="configtx.yaml: Profile is not a known key"):
        load_configtx(tmp_path)


def test_go_durations_and_byte_sizes():
    assert parse_duration("2s") == 2.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("250us") == pytest.approx(250e-6)
    for bad in ("", "2", "2 s", "s", "2sec"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    assert format_duration(2.0) == "2s" and format_duration(0.5) == "500ms"
    assert parse_size("10 MB") == 10 * 1024**2
    assert parse_size("512 KB") == 512 * 1024
    assert parse_size(1024) == 1024
    with pytest.raises(ConfigError):
        parse_size("10 MiB")
