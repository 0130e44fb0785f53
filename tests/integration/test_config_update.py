"""Config updates through Broadcast: CONFIG_UPDATE checked against mod_policies, wrapped
into a CONFIG block by the orderer, applied by the orderer's cutter and by every peer."""

from __future__ import annotations

import time

import pytest
from fabric_client import (
    Identity,
    broadcast_stub,
    orderer_deliver_stub,
    peer_deliver_stub,
    secure_channel,
    seek_envelope,
    write_transaction,
)
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.orderer import configuration_pb2

from heddle.channelconfig import compute_update, config_update_envelope, parse_config_block
from heddle.msp import load_signing_identity
from heddle.protocol import parse_envelope

pytestmark = pytest.mark.integration
S = common_pb2.Status


def latest_config(net, reader: Identity):
    """The channel's newest config, from every block the orderer has (read until not ready)."""
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        seek = seek_envelope(reader, net.spec.channel, 0, None, fail_if_not_ready=True)
        responses = list(orderer_deliver_stub(ch)(iter([seek]), timeout=10))
    assert responses[-1].status == S.NOT_FOUND  # ran past the newest block
    blocks = [r.block for r in responses if r.HasField("block")]
    config_blocks = [b for b in blocks if parse_envelope(b.data.data[0]).header_type == common_pb2.CONFIG]
    return parse_config_block(config_blocks[-1])


def batch_size_update(config, new_count: int) -> configtx_pb2.ConfigUpdate:
    updated = configtx_pb2.Config()
    updated.CopyFrom(config.config)
    value = updated.channel_group.groups["Orderer"].values["BatchSize"]
    bs = configuration_pb2.BatchSize.FromString(value.value)
    bs.max_message_count = new_count
    value.value = bs.SerializeToString()
    return compute_update(config.channel_id, config.config, updated)


def broadcast(net, env):
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        return next(broadcast_stub(ch)(iter([env]), timeout=30))


def test_config_update_signed_by_orderer_admins_is_applied_everywhere(network, endorser):
    net = network
    reader = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    orderer_admin = load_signing_identity(
        net.orderer_org_dir / "users" / "Admin@example.com" / "msp", "OrdererMSP"
    )
    org1_admin = load_signing_identity(net.user_msp(0, "Admin"), "Org1MSP")
    current = latest_config(net, reader)
    update = batch_size_update(current, 3)

    # signed by an application org admin only: /Channel/Orderer/Admins is not satisfied
    refused = broadcast(net, config_update_envelope(update, [org1_admin], org1_admin))
    assert refused.status == S.BAD_REQUEST
    assert "mod_policy" in refused.info and "BatchSize" in refused.info

    accepted = broadcast(net, config_update_envelope(update, [orderer_admin], orderer_admin))
    assert accepted.status == S.SUCCESS, accepted.info

    # the same update again: its read set is now stale
    stale = broadcast(net, config_update_envelope(update, [orderer_admin], orderer_admin))
    assert stale.status == S.BAD_REQUEST

    newest = latest_config(net, reader)
    assert newest.sequence == current.sequence + 1
    assert newest.orderer.batch_size.max_message_count == 3

    # the orderer cuts with the new BatchSize; both peers commit the config block and after it
    txids = []
    envs = []
    for i in range(9):
        env, txid = write_transaction(reader, net.spec.channel, {f"cfg-{i}": b"x"}, endorsers=(endorser,))
        envs.append(env)
        txids.append(txid)
    with secure_channel(net.orderer_address, net.orderer_tls_ca) as ch:
        assert all(r.status == S.SUCCESS for r in broadcast_stub(ch)(iter(envs), timeout=30))
    for peer in (0, 1):
        seen: set[str] = set()
        sizes_after_config: list[int] = []
        config_seen = False
        with secure_channel(net.peer_address(peer), net.peer_tls_ca(peer)) as ch:
            call = peer_deliver_stub(ch)(iter([seek_envelope(reader, net.spec.channel, 0)]), timeout=60)
            deadline = time.monotonic() + 60
            try:
                for resp in call:
                    block = resp.block
                    first = parse_envelope(block.data.data[0])
                    if first.header_type == common_pb2.CONFIG and block.header.number > 0:
                        config_seen = True
                        assert block.metadata.metadata[2] == b"\x00"  # VALID on the peer
                        continue
                    if config_seen:
                        sizes_after_config.append(len(block.data.data))
                    seen.update(parse_envelope(raw).tx_id for raw in block.data.data)
                    if set(txids) <= seen or time.monotonic() > deadline:
                        break
            finally:
                call.cancel()
        assert config_seen, f"peer {peer} committed the config block"
        assert set(txids) <= seen
        assert max(sizes_after_config) <= 3
