"""Chaincode: system chaincodes (qscc, cscc) now; the shim runtime and _lifecycle next."""
