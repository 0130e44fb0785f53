"""The ordering service: Broadcast, block cutting, consensus, block writing, Deliver."""
