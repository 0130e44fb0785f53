"""The peer: block pulling, validation and commit, Deliver, system chaincodes, endorsement."""
