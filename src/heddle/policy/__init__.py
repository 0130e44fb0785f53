"""Fabric policies: the signature-policy language, ImplicitMeta, and the one evaluator.

Every caller (ACLs, block validation, config updates, endorsement) evaluates through
``PolicyManager.evaluate`` or ``SignaturePolicy``/``evaluate_signature_policy``.
"""

from heddle.policy.dsl import (
    describe_principal,
    format_implicit_meta_policy,
    format_signature_policy,
    parse_implicit_meta_policy,
    parse_signature_policy,
)
from heddle.policy.errors import PolicyError
from heddle.policy.manager import PolicyManager
from heddle.policy.signature import (
    IdentityDeserializer,
    SignaturePolicy,
    SignedData,
    SignerSet,
    evaluate_signature_policy,
)

__all__ = [
    "IdentityDeserializer",
    "PolicyError",
    "PolicyManager",
    "SignaturePolicy",
    "SignedData",
    "SignerSet",
    "describe_principal",
    "evaluate_signature_policy",
    "format_implicit_meta_policy",
    "format_signature_policy",
    "parse_implicit_meta_policy",
    "parse_signature_policy",
]
