"""Fabric's chaincode lifecycle: packages, the peer's install store, the ``_lifecycle``
system chaincode, committed definitions, and the client flow the CLI drives."""

from heddle.chaincode.lifecycle.definitions import (
    DEFAULT_ENDORSEMENT_POLICY_REF,
    LIFECYCLE_ENDORSEMENT,
    NAMESPACE,
    ChaincodeDefinition,
    LifecycleKeyError,
    approved_definition,
    approved_package_id,
    committed_definition,
    committed_definitions,
    default_validation_parameter,
    evaluate_lifecycle_write,
    validation_policy_for_lifecycle_write,
)
from heddle.chaincode.lifecycle.packages import (
    AlreadyInstalled,
    InstalledPackage,
    PackageError,
    PackageStore,
    ccaas_package,
    connection_json,
    package,
    package_id,
    parse_package,
)
from heddle.chaincode.lifecycle.scc import LifecycleScc, SccContext

__all__ = [
    "DEFAULT_ENDORSEMENT_POLICY_REF",
    "LIFECYCLE_ENDORSEMENT",
    "NAMESPACE",
    "AlreadyInstalled",
    "ChaincodeDefinition",
    "InstalledPackage",
    "LifecycleKeyError",
    "LifecycleScc",
    "PackageError",
    "PackageStore",
    "SccContext",
    "approved_definition",
    "approved_package_id",
    "ccaas_package",
    "committed_definition",
    "committed_definitions",
    "connection_json",
    "default_validation_parameter",
    "package",
    "package_id",
    "parse_package",
    "evaluate_lifecycle_write",
    "validation_policy_for_lifecycle_write",
]
