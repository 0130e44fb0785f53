"""The peer's gateway.Gateway service and its sans-I/O endorsement planner."""

from heddle.peer.gateway.errors import GatewayError, NodeFailure
from heddle.peer.gateway.plan import (
    Layout,
    PlanError,
    application_policy_layouts,
    config_policy_layouts,
    feasible_layouts,
    signature_policy_layouts,
)
from heddle.peer.gateway.service import Gateway

__all__ = [
    "Gateway",
    "GatewayError",
    "Layout",
    "NodeFailure",
    "PlanError",
    "application_policy_layouts",
    "config_policy_layouts",
    "feasible_layouts",
    "signature_policy_layouts",
]
