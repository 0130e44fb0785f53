"""Membership: X.509 identities, MSP validation with NodeOUs, cryptogen-style material."""

from heddle.msp.config import msp_config_from_dir
from heddle.msp.identity import (
    Identity,
    MspError,
    SigningIdentity,
    load_certificate,
    parse_serialized_identity,
    serialize_identity,
)
from heddle.msp.msp import Msp, MspManager, load_signing_identity

__all__ = [
    "Identity",
    "Msp",
    "MspError",
    "MspManager",
    "SigningIdentity",
    "load_certificate",
    "load_signing_identity",
    "msp_config_from_dir",
    "parse_serialized_identity",
    "serialize_identity",
]
