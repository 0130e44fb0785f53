import pytest

from heddle.tee import SealError, expected_measurement
from heddle.tee.enclave import measure
from heddle.tee.enclave.sealing import SealingKey
from heddle.tee.host import RUNTIME_DIR

RUNTIME = {n: (RUNTIME_DIR / n).read_bytes() for n in measure.RUNTIME_FILES}
SECRET = bytes(range(32))


def test_measurement_is_deterministic_and_changes_with_one_application_byte():
    app = b"def setup(ctx):\n    pass\n"
    m1 = measure.measure(RUNTIME, app)
    assert m1 == measure.measure(dict(RUNTIME), app)
    assert len(m1) == 32
    flipped = app[:-2] + bytes([app[-2] ^ 1]) + app[-1:]
    assert measure.measure(RUNTIME, flipped) != m1


def test_measurement_covers_every_runtime_file():
    app = b"x = 1\n"
    base = measure.measure(RUNTIME, app)
    for name in measure.RUNTIME_FILES:
        changed = dict(RUNTIME)
        changed[name] = changed[name] + b"\n"
        assert measure.measure(changed, app) != base, name


def test_runtime_directory_holds_exactly_the_measured_files():
    on_disk = {p.name for p in RUNTIME_DIR.glob("*.py")}
    assert on_disk == set(measure.RUNTIME_FILES)


def test_expected_measurement_reads_the_application_file(tmp_path):
    app = tmp_path / "a.py"
    app.write_bytes(b"def setup(ctx):\n    pass\n")
    assert expected_measurement(app) == measure.measure(RUNTIME, app.read_bytes())


def test_sealed_data_unseals_under_the_same_measurement_only():
    mine = SealingKey(SECRET, b"A" * 32)
    blob = mine.seal(b"ledger key", label=b"kv")
    assert SealingKey(SECRET, b"A" * 32).unseal(blob, label=b"kv") == b"ledger key"
    with pytest.raises(SealError, match="different measurement"):
        SealingKey(SECRET, b"B" * 32).unseal(blob, label=b"kv")


def test_sealed_data_is_bound_to_platform_label_and_integrity():
    key = SealingKey(SECRET, b"A" * 32)
    blob = key.seal(b"payload", label=b"one")
    with pytest.raises(SealError):
        SealingKey(bytes(32), b"A" * 32).unseal(blob, label=b"one")
    with pytest.raises(SealError):
        key.unseal(blob, label=b"two")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        key.unseal(tampered, label=b"one")
    with pytest.raises(SealError, match="not a sealed blob"):
        key.unseal(b"\x02" + blob[1:], label=b"one")


def test_sealing_key_repr_hides_key_material():
    key = SealingKey(SECRET, b"A" * 32)
    assert "hidden" in repr(key)
    assert SECRET.hex() not in repr(key)
    with pytest.raises(ValueError):
        SealingKey(b"short", b"A" * 32)
