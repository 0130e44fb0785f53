"""The one error type of heddle.channelconfig."""


class ConfigError(ValueError):
    """Channel configuration is invalid or an update is not allowed; the message says why."""
