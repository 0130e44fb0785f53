"""A channel's policy tree and the one evaluator every caller uses.

Built from the channel's ``ConfigGroup``: each group's policies live at
``/Channel/<group>/.../<name>`` (e.g. ``/Channel/Application/Org1MSP/Admins``).
SIGNATURE policies are compiled once; an IMPLICIT_META policy ``RULE SubPolicy`` in
group G is satisfied when enough of G's child groups have a satisfied ``SubPolicy``
(ANY: one, ALL: every one, MAJORITY: more than half). A child group without that
policy counts as an unsatisfied child, as in Fabric.

With no child groups the threshold is zero, so ANY, ALL and MAJORITY are all
satisfied: Fabric sets the threshold to 0 in that case and an empty set of
sub-policies trivially meets it (e.g. an Application group with no orgs yet).

One ``evaluate`` call verifies each signature at most once, however many signature
policies the ImplicitMeta tree reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fabric_protos.common import configtx_pb2, policies_pb2
from google.protobuf.message import DecodeError

from heddle.policy.dsl import format_implicit_meta_policy
from heddle.policy.errors import PolicyError
from heddle.policy.signature import (
    IdentityDeserializer,
    SignaturePolicy,
    SignedData,
    SignerSet,
)

ROOT = "Channel"
_SEP = "/"


@dataclass(frozen=True, slots=True)
class _ImplicitMeta:
    path: str
    text: str  # "MAJORITY Admins", for messages
    threshold: int
    children: tuple[str, ...]  # policy paths in each child group, sorted by group name


class _Evaluation:
    """State of one evaluate call: the signer set is built on first need, then shared."""

    __slots__ = ("_signed_data", "_signers", "manager")

    def __init__(self, manager: PolicyManager, signed_data: Sequence[SignedData]):
        self.manager = manager
        self._signed_data = signed_data
        self._signers: SignerSet | None = None

    @property
    def signers(self) -> SignerSet:
        if self._signers is None:
            self._signers = SignerSet.from_signed_data(self._signed_data, self.manager.deserializer)
        return self._signers

    def check(self, path: str) -> None:
        policy = self.manager._policies.get(path)
        if policy is None:
            raise PolicyError(f"policy {path} does not exist")
        if isinstance(policy, SignaturePolicy):
            policy.check(self.signers)
            return
        remaining = policy.threshold
        if remaining == 0:
            return
        failures = []
        for child in policy.children:
            try:
                self.check(child)
            except PolicyError as exc:
                failures.append(str(exc))
                continue
            remaining -= 1
            if remaining == 0:
                return
        met = policy.threshold - remaining
        raise PolicyError(
            f"implicit policy {policy.path} ({policy.text}) not satisfied: {met} of "
            f"{policy.threshold} required sub-policies of {len(policy.children)} met; "
            + "; ".join(failures)
        )


class PolicyManager:
    """All policies of one channel config, addressed by path; immutable once built."""

    def __init__(
        self,
        policies: dict[str, SignaturePolicy | _ImplicitMeta],
        deserializer: IdentityDeserializer,
    ):
        self._policies = policies
        self.deserializer = deserializer

    @classmethod
    def from_channel_group(
        cls, channel_group: configtx_pb2.ConfigGroup, deserializer: IdentityDeserializer
    ) -> PolicyManager:
        """Compile every policy under ``channel_group`` (the config's "Channel" group).

        Raises PolicyError naming the path of a malformed or unsupported policy.
        """
        policies: dict[str, SignaturePolicy | _ImplicitMeta] = {}
        _add_group(policies, _SEP + ROOT, channel_group, 0)
        return cls(policies, deserializer)

    def _resolve(self, path: str) -> str:
        if path.startswith(_SEP):
            return path
        return f"{_SEP}{ROOT}{_SEP}{path}"

    def has_policy(self, path: str) -> bool:
        """True if ``path`` (absolute, or relative to /Channel) names a policy."""
        return self._resolve(path) in self._policies

    def paths(self) -> list[str]:
        """Every policy path, sorted."""
        return sorted(self._policies)

    def evaluate(self, path: str, signed_data: Sequence[SignedData]) -> None:
        """Raise PolicyError (saying which policy and what was missing) unless satisfied.

        ``path`` is absolute ("/Channel/Application/Writers") or relative to /Channel
        ("Application/Writers"); an unknown path is an error, never a pass.
        """
        _Evaluation(self, signed_data).check(self._resolve(path))


def _add_group(
    policies: dict[str, SignaturePolicy | _ImplicitMeta],
    path: str,
    group: configtx_pb2.ConfigGroup,
    depth: int,
) -> None:
    if depth > 16:
        raise PolicyError(f"config groups nest too deeply at {path}")
    child_names = sorted(group.groups)
    for name in sorted(group.policies):
        policy_path = f"{path}{_SEP}{name}"
        policy = group.policies[name].policy
        policies[policy_path] = _compile(policy_path, policy, path, child_names)
    for name in child_names:
        _add_group(policies, f"{path}{_SEP}{name}", group.groups[name], depth + 1)


def _compile(
    path: str, policy: policies_pb2.Policy, group_path: str, child_names: list[str]
) -> SignaturePolicy | _ImplicitMeta:
    if policy.type == policies_pb2.Policy.SIGNATURE:
        return SignaturePolicy.from_bytes(policy.value, name=f"policy {path}")
    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        meta = policies_pb2.ImplicitMetaPolicy()
        try:
            meta.ParseFromString(policy.value)
        except DecodeError as exc:
            raise PolicyError(f"policy {path}: not an ImplicitMetaPolicy ({exc})") from exc
        n = len(child_names)
        if meta.rule == policies_pb2.ImplicitMetaPolicy.ANY:
            threshold = 1
        elif meta.rule == policies_pb2.ImplicitMetaPolicy.ALL:
            threshold = n
        elif meta.rule == policies_pb2.ImplicitMetaPolicy.MAJORITY:
            threshold = n // 2 + 1
        else:
            raise PolicyError(f"policy {path}: unknown ImplicitMeta rule {meta.rule}")
        if n == 0:
            threshold = 0
        children = tuple(f"{group_path}{_SEP}{c}{_SEP}{meta.sub_policy}" for c in child_names)
        return _ImplicitMeta(path, format_implicit_meta_policy(meta), threshold, children)
    try:
        kind = policies_pb2.Policy.PolicyType.Name(policy.type)
    except ValueError:
        kind = str(policy.type)
    raise PolicyError(f"policy {path}: unsupported policy type {kind}")
