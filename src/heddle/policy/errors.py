"""The one error type of heddle.policy."""


class PolicyError(ValueError):
    """A policy is malformed, missing, or not satisfied; the message says which and why."""
