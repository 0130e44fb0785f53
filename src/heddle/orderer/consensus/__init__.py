"""Consensus implementations behind one Chain interface: solo (and raft, later)."""
