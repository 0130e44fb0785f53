"""The signature count and crypto-limit arithmetic behind `heddle bench`'s ratio."""

import os

import pytest

from heddle.bench.cpu import cpu_seconds
from heddle.bench.cryptolimit import EcdsaSpeed, count_signatures, crypto_limit_tps, measure_ecdsa


def test_default_topology_needs_four_signs_and_nine_verifies_plus_block_share():
    c = count_signatures(endorsers=2, committing_peers=2, block_size=500)
    # client proposal + 2 endorsements + client envelope + 1/500 block signature
    assert c.signs == pytest.approx(4 + 1 / 500)
    # 2 endorsers check the proposal, the orderer the envelope, each of 2 peers the envelope,
    # both endorsements and 1/500 of the block signature
    assert c.verifies == pytest.approx(2 + 1 + 2 * (3 + 1 / 500))
    assert sum(c.detail.values()) == pytest.approx(c.signs + c.verifies)


def test_crypto_limit_is_cores_over_signature_time_per_tx():
    speed = EcdsaSpeed(sign_us=100.0, verify_us=200.0, samples=1)
    c = count_signatures(endorsers=1, committing_peers=1, block_size=1)
    # signs 1+1+1+1 = 4 (400us), verifies 1+1+1*(1+1+1) = 5 (1000us) -> 1.4 ms per tx
    assert crypto_limit_tps(speed, c, cores=2) == pytest.approx(2 / 0.0014)


def test_measurement_gives_positive_times():
    s = measure_ecdsa(seconds=0.1)
    assert s.sign_us > 0 and s.verify_us > 0 and s.samples > 0


def test_cpu_seconds_of_this_process_grows_with_work():
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before
