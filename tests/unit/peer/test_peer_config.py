"""core.yaml's peer.validatorPoolSize, as Fabric reads it: 0 (the default) means one
validation thread per CPU; a negative size is refused with the key named."""

import pytest

from heddle.common.config import ConfigFileError
from heddle.peer.config import load_peer_config

BASE = """
peer:
  id: peer0.org1.example.com
  localMspId: Org1MSP
  mspConfigPath: {tmp}/msp
  fileSystemPath: {tmp}/production
{extra}
"""


def _load(tmp_path, extra=""):
    path = tmp_path / "core.yaml"
    path.write_text(BASE.format(tmp=tmp_path, extra=extra))
    return load_peer_config(path)


def test_validator_pool_size_defaults_to_zero_and_is_read(tmp_path):
    assert _load(tmp_path).validator_pool_size == 0
    assert _load(tmp_path, "  validatorPoolSize: 3").validator_pool_size == 3


def test_negative_validator_pool_size_is_refused(tmp_path):
    with pytest.raises(ConfigFileError, match="peer.validatorPoolSize must be 0"):
        _load(tmp_path, "  validatorPoolSize: -1")
