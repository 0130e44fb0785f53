"""Config updates: mod_policies, read-set versions, and compute_update's diffs."""

from __future__ import annotations

import pytest
from fabric_protos.common import configtx_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_values
from fabric_protos.peer import configuration_pb2 as peer_values

from heddle.channelconfig import (
    ConfigError,
    channel_config_from_config,
    genesis_block,
    load_configtx,
    parse_config_block,
)
from heddle.channelconfig.update import (
    compute_update,
    config_update_envelope,
    mod_policy_path,
    propose_config,
)


@pytest.fixture(scope="module")
def current(network_dir):
    configtx = load_configtx(network_dir / "configtx.yaml")
    return parse_config_block(genesis_block(configtx, "ChannelUsingRaft", "mychannel", network_dir))


def _copy(config: configtx_pb2.Config) -> configtx_pb2.Config:
    out = configtx_pb2.Config()
    out.CopyFrom(config)
    return out


def _with_batch_count(config, count: int) -> configtx_pb2.Config:
    updated = _copy(config)
    value = updated.channel_group.groups["Orderer"].values["BatchSize"]
    bs = orderer_values.BatchSize()
    bs.ParseFromString(value.value)
    bs.max_message_count = count
    value.value = bs.SerializeToString()
    return updated


def _with_acls(config) -> configtx_pb2.Config:
    updated = _copy(config)
    acls = peer_values.ACLs()
    acls.acls["qscc/GetChainInfo"].policy_ref = "/Channel/Application/Readers"
    app = updated.channel_group.groups["Application"]
    app.values["ACLs"].value = acls.SerializeToString()
    app.values["ACLs"].mod_policy = "Admins"
    return updated


def _with_anchor(config, org: str, port: int) -> configtx_pb2.Config:
    updated = _copy(config)
    group = updated.channel_group.groups["Application"].groups[org]
    group.values["AnchorPeers"].value = peer_values.AnchorPeers(
        anchor_peers=[peer_values.AnchorPeer(host="127.0.0.1", port=port)]
    ).SerializeToString()
    return updated


def _update(current, updated, signers, submitter=None):
    cu = compute_update(current.channel_id, current.config, updated)
    return config_update_envelope(cu, signers, submitter or signers[0])


def test_orderer_admin_can_change_batch_size(current, admins):
    env = _update(current, _with_batch_count(current.config, 100), [admins["OrdererMSP"]])
    new = propose_config(current, env)
    assert new.config.sequence == 1
    assert new.last_update == env
    cc = channel_config_from_config("mychannel", new.config)
    assert cc.orderer.batch_size.max_message_count == 100
    value = new.config.channel_group.groups["Orderer"].values["BatchSize"]
    assert value.version == 1 and value.mod_policy == "Admins"
    # Everything else is untouched.
    assert (
        new.config.channel_group.groups["Application"] == current.config.channel_group.groups["Application"]
    )


def test_peer_org_admin_cannot_change_batch_size(current, admins):
    env = _update(current, _with_batch_count(current.config, 100), [admins["Org1MSP"]])
    with pytest.raises(ConfigError) as err:
        propose_config(current, env)
    msg = str(err.value)
    assert (
        "modifying value /Channel/Orderer/BatchSize requires its mod_policy "
        "/Channel/Orderer/Admins (Admins)" in msg
    )
    assert "signatures do not satisfy" in msg


def test_adding_an_application_value_needs_a_majority_of_org_admins(current, admins):
    updated = _with_acls(current.config)
    with pytest.raises(
        ConfigError,
        match="modifying group /Channel/Application requires its mod_policy /Channel/Application/Admins",
    ):
        propose_config(current, _update(current, updated, [admins["Org1MSP"]]))
    new = propose_config(current, _update(current, updated, [admins["Org1MSP"], admins["Org2MSP"]]))
    cc = channel_config_from_config("mychannel", new.config)
    assert cc.application.acls == {"qscc/GetChainInfo": "/Channel/Application/Readers"}
    assert new.config.channel_group.groups["Application"].version == 1


def test_an_org_admin_updates_its_own_anchor_peers_only(current, admins):
    updated = _with_anchor(current.config, "Org1MSP", 7055)
    new = propose_config(current, _update(current, updated, [admins["Org1MSP"]]))
    cc = channel_config_from_config("mychannel", new.config)
    assert cc.application.anchor_peers["Org1MSP"] == (("127.0.0.1", 7055),)
    with pytest.raises(
        ConfigError,
        match="value /Channel/Application/Org1MSP/AnchorPeers "
        "requires its mod_policy "
        "/Channel/Application/Org1MSP/Admins",
    ):
        propose_config(current, _update(current, updated, [admins["Org2MSP"]]))


def test_a_client_of_the_right_org_is_not_an_admin(current, admins):
    updated = _with_anchor(current.config, "Org1MSP", 7055)
    with pytest.raises(ConfigError, match="/Channel/Application/Org1MSP/Admins"):
        propose_config(current, _update(current, updated, [admins.user("Org1MSP")]))


def test_envelope_signer_does_not_count_unless_asked(current, admins):
    updated = _with_anchor(current.config, "Org1MSP", 7055)
    cu = compute_update(current.channel_id, current.config, updated)
    env = config_update_envelope(cu, [], admins["Org1MSP"])
    with pytest.raises(ConfigError, match="Org1MSP/Admins"):
        propose_config(current, env)
    new = propose_config(current, env, include_envelope_signer=True)
    assert new.config.sequence == 1


def test_removing_an_org_needs_application_admins(current, admins):
    updated = _copy(current.config)
    del updated.channel_group.groups["Application"].groups["Org2MSP"]
    with pytest.raises(ConfigError, match="group /Channel/Application"):
        propose_config(current, _update(current, updated, [admins["Org1MSP"]]))
    new = propose_config(current, _update(current, updated, [admins["Org1MSP"], admins["Org2MSP"]]))
    cc = channel_config_from_config("mychannel", new.config)
    assert list(cc.application.orgs) == ["Org1MSP"]
    assert sorted(cc.mspids) == ["OrdererMSP", "Org1MSP"]


def test_stale_read_set_is_rejected(current, admins):
    first = propose_config(
        current, _update(current, _with_batch_count(current.config, 100), [admins["OrdererMSP"]])
    )
    after = channel_config_from_config("mychannel", first.config)
    # Computed against sequence 0, where BatchSize was at version 0; it is now at 1.
    stale = _update(current, _with_batch_count(current.config, 200), [admins["OrdererMSP"]])
    with pytest.raises(
        ConfigError,
        match="value /Channel/Orderer/BatchSize is at version 1, so a change must set version 2, not 1",
    ):
        propose_config(after, stale)
    # An update whose read set pins a group that has moved on is rejected by the read set.
    acl_update = _update(current, _with_acls(current.config), [admins["Org1MSP"], admins["Org2MSP"]])
    with_acls = channel_config_from_config("mychannel", propose_config(current, acl_update).config)
    remove_org2 = _copy(current.config)
    del remove_org2.channel_group.groups["Application"].groups["Org2MSP"]
    stale_group = _update(current, remove_org2, [admins["Org1MSP"], admins["Org2MSP"]])
    with pytest.raises(
        ConfigError, match="read set expects group /Channel/Application at version 0 but it is at version 1"
    ):
        propose_config(with_acls, stale_group)


def test_wrong_channel_is_rejected(current, admins):
    cu = compute_update("otherchannel", current.config, _with_batch_count(current.config, 100))
    env = config_update_envelope(cu, [admins["OrdererMSP"]], admins["OrdererMSP"])
    with pytest.raises(ConfigError, match="config update is for channel 'otherchannel', not 'mychannel'"):
        propose_config(current, env)


def test_a_write_set_that_changes_nothing_is_rejected(current, admins):
    cu = configtx_pb2.ConfigUpdate(
        channel_id="mychannel", read_set=configtx_pb2.ConfigGroup(), write_set=configtx_pb2.ConfigGroup()
    )
    env = config_update_envelope(cu, [admins["OrdererMSP"]], admins["OrdererMSP"])
    with pytest.raises(ConfigError, match="changes nothing"):
        propose_config(current, env)


def test_adding_an_element_without_bumping_its_group_is_rejected(current, admins):
    cu = configtx_pb2.ConfigUpdate(channel_id="mychannel")
    cu.read_set.groups["Application"].version = 0
    cu.write_set.groups["Application"].version = 0
    cu.write_set.groups["Application"].values["ACLs"].mod_policy = "Admins"
    env = config_update_envelope(cu, [admins["Org1MSP"], admins["Org2MSP"]], admins["Org1MSP"])
    with pytest.raises(
        ConfigError,
        match="adding value /Channel/Application/ACLs requires "
        "modifying its parent group /Channel/Application",
    ):
        propose_config(current, env)


def test_an_update_producing_an_invalid_config_is_rejected(current, admins):
    updated = _with_batch_count(current.config, 0)
    with pytest.raises(ConfigError, match="max_message_count must be positive"):
        propose_config(current, _update(current, updated, [admins["OrdererMSP"]]))


def test_compute_update_shape_matches_configtxlator(current):
    cu = compute_update("mychannel", current.config, _with_batch_count(current.config, 100))
    # Unchanged parents are pinned at their version in both sets; the value is write-only.
    assert cu.read_set.version == cu.write_set.version == 0
    assert cu.read_set.groups["Orderer"].version == 0
    assert dict(cu.read_set.groups["Orderer"].values) == {}
    assert cu.write_set.groups["Orderer"].values["BatchSize"].version == 1
    assert list(cu.write_set.groups) == ["Orderer"]
    with pytest.raises(ConfigError, match="no differences"):
        compute_update("mychannel", current.config, current.config)


def test_mod_policy_paths_resolve_like_fabric():
    assert mod_policy_path("group", ("Channel", "Application"), "Admins") == "/Channel/Application/Admins"
    assert (
        mod_policy_path("value", ("Channel", "Application", "ACLs"), "Admins")
        == "/Channel/Application/Admins"
    )
    assert (
        mod_policy_path("value", ("Channel", "OrdererAddresses"), "/Channel/Orderer/Admins")
        == "/Channel/Orderer/Admins"
    )


def _org3_group(network_dir) -> configtx_pb2.ConfigGroup:
    from heddle.channelconfig.configtx import PolicySpec
    from heddle.channelconfig.genesis import encode_policy
    from heddle.msp import msp_config_from_dir

    group = configtx_pb2.ConfigGroup(mod_policy="Admins")
    msp = msp_config_from_dir(network_dir / "crypto/peerOrganizations/org3.example.com/msp", "Org3MSP")
    group.values["MSP"].value = msp.SerializeToString()
    group.values["MSP"].mod_policy = "Admins"
    for name, rule in {
        "Readers": "OR('Org3MSP.admin', 'Org3MSP.peer', 'Org3MSP.client')",
        "Writers": "OR('Org3MSP.admin', 'Org3MSP.client')",
        "Admins": "OR('Org3MSP.admin')",
        "Endorsement": "OR('Org3MSP.peer')",
    }.items():
        group.policies[name].policy.CopyFrom(encode_policy(PolicySpec("Signature", rule)))
        group.policies[name].mod_policy = "Admins"
    return group


def test_adding_an_org_takes_a_majority_of_existing_admins(current, admins, network_dir):
    updated = _copy(current.config)
    updated.channel_group.groups["Application"].groups["Org3MSP"].CopyFrom(_org3_group(network_dir))
    with pytest.raises(ConfigError, match="modifying group /Channel/Application requires"):
        propose_config(current, _update(current, updated, [admins["Org1MSP"]]))
    new = propose_config(current, _update(current, updated, [admins["Org1MSP"], admins["Org2MSP"]]))
    cc = channel_config_from_config("mychannel", new.config)
    assert sorted(cc.application.orgs) == ["Org1MSP", "Org2MSP", "Org3MSP"]
    assert cc.policies.has_policy("/Channel/Application/Org3MSP/Admins")
    # The new org's elements start at version 0; its parent moved to version 1.
    app = new.config.channel_group.groups["Application"]
    assert app.version == 1 and app.groups["Org3MSP"].version == 0
    # Org3's admin now counts toward MAJORITY Admins (2 of 3).
    later = _with_anchor(new.config, "Org1MSP", 7056)
    cu = compute_update("mychannel", new.config, later)
    env = config_update_envelope(cu, [admins["Org1MSP"]], admins["Org1MSP"])
    assert propose_config(cc, env).config.sequence == 2


def _strip_versions(group: configtx_pb2.ConfigGroup) -> configtx_pb2.ConfigGroup:
    out = configtx_pb2.ConfigGroup()
    out.CopyFrom(group)

    def walk(g):
        g.version = 0
        for v in list(g.values.values()) + list(g.policies.values()):
            v.version = 0
        for c in g.groups.values():
            walk(c)

    walk(out)
    return out


@pytest.mark.parametrize("change", ["batch", "acls", "anchor", "remove_org"])
def test_proposed_config_equals_the_updated_config(current, admins, change):
    """compute_update then propose_config reproduces the edited config (versions aside)."""
    if change == "batch":
        updated = _with_batch_count(current.config, 42)
    elif change == "acls":
        updated = _with_acls(current.config)
    elif change == "anchor":
        updated = _with_anchor(current.config, "Org2MSP", 9099)
    else:
        updated = _copy(current.config)
        del updated.channel_group.groups["Application"].groups["Org1MSP"]
    signers = [admins["OrdererMSP"], admins["Org1MSP"], admins["Org2MSP"]]
    new = propose_config(current, _update(current, updated, signers))
    assert _strip_versions(new.config.channel_group) == _strip_versions(updated.channel_group)
