"""Shared fixtures for the trusted execution unit tests."""

import pytest

from heddle.tee import VirtualPlatform


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    return VirtualPlatform.ensure(tmp_path_factory.mktemp("virtual-platform"))
