"""heddle: a confidential ledger on Hyperledger Fabric's wire protocol."""

__version__ = "0.1.0"
