"""Local networks from one command: crypto, channel genesis, node configs, processes."""

from heddle.network.local import LocalNetwork, NetworkSpec

__all__ = ["LocalNetwork", "NetworkSpec"]
