"""etcdraft consensus: a Raft-replicated ordering service (heddle.raft under the hood)."""

from heddle.orderer.consensus.raft.chain import RaftChain, raft_metadata
from heddle.orderer.consensus.raft.transport import Cluster, ClusterService, ClusterTransport, FaultInjector

__all__ = ["Cluster", "ClusterService", "ClusterTransport", "FaultInjector", "RaftChain", "raft_metadata"]
