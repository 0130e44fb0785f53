"""Pieces shared by the node processes: YAML config access, TLS, gRPC plumbing."""
