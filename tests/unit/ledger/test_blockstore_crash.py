"""kill -9 a real writer process at a random moment; nothing it acknowledged is lost.

The seed is printed; rerun a failure with HEDDLE_CRASH_SEED=<seed>.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger_blocks import make_block

from heddle.ledger import BlockStore

SEGMENT_BYTES = 8 << 20
TXS, PAYLOAD = 8, 250_000  # ~2 MB blocks: SIGKILL can stop a write() of this size part-way

WRITER = """
import sys
sys.path.insert(0, {tests_dir!r})
from ledger_blocks import make_block
from heddle.ledger import BlockStore

store = BlockStore({directory!r}, max_segment_bytes={segment})
n = store.height
print("ready", n, flush=True)
while True:
    store.append(make_block(n, txs={txs}, payload_size={payload}))
    print(n, flush=True)
    n += 1
"""


def run_writer_and_kill(directory: Path, rng: random.Random) -> tuple[int, list[int]]:
    code = WRITER.format(
        tests_dir=str(Path(__file__).parent), directory=str(directory), segment=SEGMENT_BYTES,
        txs=TXS, payload=PAYLOAD,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        first = proc.stdout.readline().split()
        assert first and first[0] == "ready", first
        start = int(first[1])
        target = rng.randint(1, 40)
        acked = []
        while len(acked) < target:
            line = proc.stdout.readline()
            assert line, "writer died"
            acked.append(int(line))
        time.sleep(rng.uniform(0, 0.01))  # land somewhere inside a later append
        proc.send_signal(signal.SIGKILL)
        acked += [int(x) for x in proc.stdout.read().split()]
    finally:
        proc.kill()
        proc.wait()
    return start, acked


def test_kill_9_loses_no_acknowledged_block(tmp_path, caplog):
    seed = int(os.environ.get("HEDDLE_CRASH_SEED", random.randrange(1 << 32)))
    print(f"HEDDLE_CRASH_SEED={seed}")
    rng = random.Random(seed)
    caplog.set_level("INFO", logger="heddle.ledger.blockstore")
    height = 0
    for _ in range(5):
        start, acked = run_writer_and_kill(tmp_path, rng)
        assert start == height
        assert acked == list(range(start, start + len(acked)))
        with BlockStore(tmp_path, max_segment_bytes=SEGMENT_BYTES) as store:
            assert store.height > acked[-1]  # an unacknowledged block may also have landed
            for n, block in enumerate(store.iter_from(0)):
                assert block == make_block(n, txs=TXS, payload_size=PAYLOAD), n
            assert store.tx_location(f"tx-{acked[-1]}-{TXS - 1}") == (acked[-1], TXS - 1)
            height = store.height
    with BlockStore(tmp_path, max_segment_bytes=SEGMENT_BYTES) as store:
        n = store.height
        store.append(make_block(n, txs=TXS, payload_size=PAYLOAD))
        assert store.height == n + 1
    assert len(list(tmp_path.glob("blockfile_*"))) >= 2
    msgs = [r.getMessage() for r in caplog.records]
    torn = sum("torn" in m for m in msgs)
    reindexed = sum("re-indexing" in m for m in msgs)
    print(f"recoveries: {torn} torn tails truncated, {reindexed} blocks re-indexed; height {n + 1}")
    shutil.rmtree(tmp_path)  # ~200 MB of block files; pytest keeps old tmp dirs around
