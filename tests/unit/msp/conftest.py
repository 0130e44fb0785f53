"""Fixtures for the MSP tests; the PKI helpers live in msp_pki."""

import pytest
from msp_pki import TestCA


@pytest.fixture(scope="session")
def org1_ca() -> TestCA:
    return TestCA("ca.org1.example.com")


@pytest.fixture(scope="session")
def org2_ca() -> TestCA:
    return TestCA("ca.org2.example.com")
