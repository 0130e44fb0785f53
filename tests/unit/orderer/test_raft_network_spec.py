"""`heddle up --orderers N` plumbing: ports, node configuration and the Raft channel config."""

from __future__ import annotations

import yaml

from heddle.channelconfig import genesis_block, load_configtx, parse_config_block
from heddle.channelconfig.defaults import DEFAULT_PROFILE
from heddle.cli.main import build_parser
from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.network.up import _spec


def test_default_ports_of_a_five_orderer_network_do_not_collide():
    spec = NetworkSpec(orderers=5)
    listen, admin, cluster = (
        spec.orderer_listen_ports(),
        spec.orderer_admin_ports(),
        spec.orderer_cluster_ports(),
    )
    assert listen == [7050, 8050, 9050, 10050, 11050]
    assert admin == [7053, 8053, 9053, 10053, 11053]
    assert cluster == [7054, 8054, 9054, 10054, 11054]
    every = listen + admin + cluster + spec.peer_ports
    assert len(every) == len(set(every))


def test_up_without_orderers_stays_solo():
    args = build_parser().parse_args(["up"])
    assert args.orderers == 1
    spec = _spec("mychannel", "2s", args.orderers)
    assert not spec.raft and spec.orderer_listen_ports() == [7050]
    assert build_parser().parse_args(["up", "--orderers", "3"]).orderers == 3


def test_generated_raft_network_pins_consenters_to_cluster_ports(tmp_path):
    spec = NetworkSpec(orderers=3, raft_options={"TickInterval": "100ms"})
    net = LocalNetwork(tmp_path, spec)
    net.generate()
    config = parse_config_block(
        genesis_block(load_configtx(net.data / "configtx.yaml"), DEFAULT_PROFILE, "mychannel", net.data)
    )
    assert config.orderer.consensus_type == "etcdraft"
    assert [c.port for c in config.orderer.consenters] == [7054, 8054, 9054]
    assert config.orderer.raft_options.tick_interval == "100ms"
    assert config.orderer.raft_options.election_tick == 10  # Fabric's defaults for the rest
    assert config.orderer.raft_options.heartbeat_tick == 1
    assert config.orderer.raft_options.max_inflight_blocks == 5
    assert config.orderer.raft_options.snapshot_interval_size == 16 * 1024 * 1024
    assert list(config.orderer.addresses) == ["127.0.0.1:7050", "127.0.0.1:8050", "127.0.0.1:9050"]
    for o in range(3):
        doc = yaml.safe_load(net.orderer_yaml(o).read_text())
        assert doc["General"]["Cluster"]["ListenPort"] == 7054 + 1000 * o
        assert doc["Consensus"]["WALDir"].endswith("etcdraft/wal")
    described = LocalNetwork.from_description(tmp_path, net.describe())
    assert described.spec.orderers == 3
    assert described.spec.orderer_cluster_ports() == [7054, 8054, 9054]
