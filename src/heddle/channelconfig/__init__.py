"""Channel configuration: configtx.yaml, genesis blocks, typed config, config updates.

- ``load_configtx`` / ``genesis_block``: configtxgen's job, from a profile to block 0;
- ``parse_config_block``: a config block to a typed ``ChannelConfig`` with its MSP
  manager and policy manager;
- ``propose_config`` / ``compute_update``: config updates checked against each
  element's mod_policy, and the diff of two configs (configtxlator's compute_update).
"""

from heddle.channelconfig.configtx import load_configtx, profile_spec
from heddle.channelconfig.defaults import (
    DEFAULT_PROFILE,
    default_configtx,
    write_default_configtx,
)
from heddle.channelconfig.errors import ConfigError
from heddle.channelconfig.genesis import channel_group, config_block, genesis_block
from heddle.channelconfig.parse import (
    ApplicationConfig,
    BatchSize,
    ChannelConfig,
    Consenter,
    OrdererConfig,
    OrgConfig,
    RaftOptions,
    channel_config_from_config,
    config_envelope_from_block,
    describe_config,
    parse_config_block,
)
from heddle.channelconfig.units import format_duration, parse_duration, parse_size
from heddle.channelconfig.update import (
    ConfigUpdateRequest,
    compute_update,
    config_update_envelope,
    mod_policy_path,
    parse_config_update_envelope,
    propose_config,
    sign_config_update,
)

__all__ = [
    "DEFAULT_PROFILE",
    "ApplicationConfig",
    "BatchSize",
    "ChannelConfig",
    "ConfigError",
    "ConfigUpdateRequest",
    "Consenter",
    "OrdererConfig",
    "OrgConfig",
    "RaftOptions",
    "channel_config_from_config",
    "channel_group",
    "compute_update",
    "config_block",
    "config_envelope_from_block",
    "config_update_envelope",
    "default_configtx",
    "describe_config",
    "format_duration",
    "genesis_block",
    "load_configtx",
    "mod_policy_path",
    "parse_config_block",
    "parse_config_update_envelope",
    "parse_duration",
    "parse_size",
    "profile_spec",
    "propose_config",
    "sign_config_update",
    "write_default_configtx",
]
