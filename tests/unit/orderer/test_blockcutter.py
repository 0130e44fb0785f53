"""Every block-cutting rule Fabric applies, on the pure BlockCutter."""

from hypothesis import given
from hypothesis import strategies as st

from heddle.orderer.blockcutter import BatchSize, BlockCutter, message_size


def msg(i: int, size: int = 10) -> bytes:
    return i.to_bytes(4, "big") + b"x" * (size - 4)


def test_cuts_exactly_at_max_message_count():
    cutter = BlockCutter(BatchSize(max_message_count=3, preferred_max_bytes=10_000))
    assert cutter.ordered(msg(1)).batches == []
    assert cutter.ordered(msg(2)).batches == []
    result = cutter.ordered(msg(3))
    assert result.batches == [[msg(1), msg(2), msg(3)]]
    assert result.pending is False
    assert cutter.pending_count == 0


def test_message_over_preferred_max_bytes_goes_alone_after_pending_batch():
    cutter = BlockCutter(BatchSize(max_message_count=10, preferred_max_bytes=100))
    cutter.ordered(msg(1))
    big = msg(2, 150)
    result = cutter.ordered(big)
    assert result.batches == [[msg(1)], [big]]
    assert result.pending is False


def test_message_over_preferred_max_bytes_with_nothing_pending_is_one_batch():
    cutter = BlockCutter(BatchSize(max_message_count=10, preferred_max_bytes=100))
    big = msg(1, 101)
    assert cutter.ordered(big).batches == [[big]]


def test_message_that_would_overflow_preferred_size_cuts_pending_first():
    cutter = BlockCutter(BatchSize(max_message_count=10, preferred_max_bytes=100))
    a, b, c = msg(1, 40), msg(2, 40), msg(3, 40)
    assert cutter.ordered(a).batches == []
    assert cutter.ordered(b).batches == []
    result = cutter.ordered(c)  # 120 > 100: [a, b] is cut, c starts a new batch
    assert result.batches == [[a, b]]
    assert result.pending is True
    assert cutter.cut() == [c]


def test_exactly_preferred_size_stays_in_batch():
    cutter = BlockCutter(BatchSize(max_message_count=10, preferred_max_bytes=100))
    cutter.ordered(msg(1, 50))
    assert cutter.ordered(msg(2, 50)).batches == []
    assert cutter.pending_count == 2


def test_timeout_cut_returns_pending_and_empties():
    cutter = BlockCutter(BatchSize(max_message_count=10))
    cutter.ordered(msg(1))
    cutter.ordered(msg(2))
    assert cutter.cut() == [msg(1), msg(2)]
    assert cutter.cut() == []


def test_message_size_counts_payload_and_signature():
    assert message_size(b"a" * 7, b"s" * 3) == 10


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=60),
    max_count=st.integers(min_value=1, max_value=8),
    preferred=st.integers(min_value=20, max_value=400),
)
def test_batches_preserve_order_and_respect_limits(sizes, max_count, preferred):
    cutter = BlockCutter(BatchSize(max_message_count=max_count, preferred_max_bytes=preferred))
    messages = [msg(i, max(s, 4)) for i, s in enumerate(sizes)]
    batches = []
    for m in messages:
        batches.extend(cutter.ordered(m).batches)
    tail = cutter.cut()
    if tail:
        batches.append(tail)
    assert [m for b in batches for m in b] == messages  # nothing lost, nothing reordered
    for b in batches:
        assert 1 <= len(b) <= max_count
        if len(b) > 1:  # only a lone message may exceed the preferred size
            assert sum(len(m) for m in b) <= preferred
