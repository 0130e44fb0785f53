"""Virtual enclaves as real processes: measurement, sealing, death, concurrency, ordering."""

import asyncio
import os
import signal
import time

import pytest

from heddle.tee import (
    AttestationError,
    AttestedSession,
    Enclave,
    EnclaveDied,
    EnclaveError,
    EnclaveStartError,
    VerificationPolicy,
    VirtualPlatform,
    expected_measurement,
    verify_evidence,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

APP = """
import json, threading, time

def setup(ctx):
    order = {}
    lock = threading.Lock()

    @ctx.handler("slow")
    def slow(body, session):
        start = time.monotonic()
        time.sleep(float(body))
        return json.dumps([session.id, start, time.monotonic()]).encode()

    @ctx.host_handler("append")
    def append(body):
        stream, value = body.split(b":")
        time.sleep(0.002 * ((int(value) * 7) % 5))  # uneven work: a pool alone would reorder
        with lock:
            seen = order.setdefault(stream, [])
            seen.append(int(value))
            return json.dumps(seen).encode()

    @ctx.host_handler("sleep")
    def sleep(body):
        time.sleep(float(body))
        return body

    @ctx.host_handler("ask_host")
    def ask_host(body):
        return ctx.call_host("host.double", body)

    @ctx.host_handler("seal")
    def seal(body):
        return ctx.seal(body, label=b"test")

    @ctx.host_handler("unseal")
    def unseal(body):
        return ctx.unseal(body, label=b"test")

# variant: a
"""


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return VirtualPlatform.ensure(tmp_path_factory.mktemp("platform"))


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def one_byte_different(app):
    other = app.with_name("app_modified.py")
    data = bytearray(app.read_bytes())
    assert data[-2:] == b"a\n"
    data[-2] = ord("b")  # one byte, in the trailing comment: the code still runs
    other.write_bytes(bytes(data))
    return other


def test_enclave_measurement_is_fixed_by_its_code_and_bound_in_evidence(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            assert enclave.measurement == expected_measurement(app)
            nonce = os.urandom(32)
            ev = await enclave.evidence(nonce)
            dev = VerificationPolicy.development([enclave.measurement])
            result = verify_evidence(ev, nonce=nonce, policy=dev, verifiers=[platform.verifier()])
            assert result.measurement == enclave.measurement
            assert set(result.public_keys) == {"tls"}
            with pytest.raises(AttestationError, match="'virtual' is not accepted"):
                verify_evidence(
                    ev,
                    nonce=nonce,
                    policy=VerificationPolicy.production([enclave.measurement]),
                    verifiers=[platform.verifier()],
                )

    run(main())


def test_debug_enclave_is_flagged_and_refused_unless_the_policy_allows_debug(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform, debug=True) as enclave:
            assert enclave.debug
            nonce = os.urandom(32)
            ev = await enclave.evidence(nonce)
            strict = VerificationPolicy.development([enclave.measurement], allow_debug=False)
            with pytest.raises(AttestationError, match="debug enclaves are not allowed"):
                verify_evidence(ev, nonce=nonce, policy=strict, verifiers=[platform.verifier()])
            relaxed = VerificationPolicy.development([enclave.measurement])
            result = verify_evidence(ev, nonce=nonce, policy=relaxed, verifiers=[platform.verifier()])
            assert result.claims.debug

    run(main())


def test_one_byte_different_enclave_is_refused_by_a_policy_for_the_original(platform, app):
    modified = one_byte_different(app)

    async def main():
        policy = VerificationPolicy.development([expected_measurement(app)])
        async with await Enclave.start(modified, platform=platform) as enclave:
            assert enclave.measurement != expected_measurement(app)
            with pytest.raises(AttestationError, match="not allowed"):
                await AttestedSession.connect(enclave, policy=policy, verifiers=[platform.verifier()])
        async with await Enclave.start(app, platform=platform) as enclave:
            session = await AttestedSession.connect(enclave, policy=policy, verifiers=[platform.verifier()])
            assert await session.call("slow", b"0")

    run(main())


def test_sealed_data_opens_only_under_the_same_measurement(platform, app):
    modified = one_byte_different(app)

    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            blob = await enclave.call("seal", b"database key")
        assert b"database key" not in blob
        async with await Enclave.start(modified, platform=platform) as other:
            with pytest.raises(EnclaveError, match="different measurement"):
                await other.call("unseal", blob)
        async with await Enclave.start(app, platform=platform) as again:  # a restart
            assert await again.call("unseal", blob) == b"database key"

    run(main())


def test_killed_enclave_gives_a_clear_error_and_a_new_one_can_start(platform, app):
    async def main():
        enclave = await Enclave.start(app, platform=platform)
        pending = asyncio.ensure_future(enclave.call("sleep", b"5"))
        await asyncio.sleep(0.2)
        os.kill(enclave.pid, signal.SIGKILL)
        with pytest.raises(EnclaveDied, match="died: killed by SIGKILL; start a new one"):
            await pending
        died = await asyncio.wait_for(enclave.wait_dead(), 5)
        assert not enclave.alive and "SIGKILL" in str(died)
        with pytest.raises(EnclaveDied):
            await enclave.evidence(os.urandom(32))
        async with await Enclave.start(app, platform=platform) as fresh:
            assert fresh.alive and fresh.measurement == enclave.measurement
            assert await fresh.call("sleep", b"0") == b"0"

    run(main())


def test_many_sessions_make_progress_in_parallel(platform, app):
    import json

    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            policy = VerificationPolicy.development([enclave.measurement])
            sessions = [
                await AttestedSession.connect(enclave, policy=policy, verifiers=[platform.verifier()])
                for _ in range(6)
            ]
            t0 = time.monotonic()
            replies = await asyncio.gather(*(s.call("slow", b"0.4") for s in sessions))
            elapsed = time.monotonic() - t0
            spans = [json.loads(r)[1:] for r in replies]
            latest_start = max(s for s, _ in spans)
            earliest_end = min(e for _, e in spans)
            assert latest_start < earliest_end, "every session was inside its handler at once"
            assert elapsed < 6 * 0.4 * 0.6, elapsed

    run(main())


def test_replies_interleave_and_each_stream_keeps_its_order(platform, app):
    import json

    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            finished = []

            async def call(method, body, stream=0):
                out = await enclave.call(method, body, stream=stream)
                finished.append(method)
                return out

            slow = asyncio.ensure_future(call("sleep", b"0.5"))
            await asyncio.sleep(0.05)
            await call("sleep", b"0")
            assert finished == ["sleep"] and not slow.done()  # the later reply came first
            await slow

            streams = [enclave.new_stream() for _ in range(3)]
            plan = [(i, s) for i in range(15) for s in streams]
            results = await asyncio.gather(*(call("append", f"{s}:{i}".encode(), stream=s) for i, s in plan))
            for (i, _s), reply in zip(plan, results, strict=True):
                assert json.loads(reply) == list(range(i + 1))  # stream order kept

    run(main())


def test_enclave_requests_to_the_host_use_their_own_id_space(platform, app):
    async def main():
        frames = []
        async with await Enclave.start(
            app, platform=platform, tap=lambda d, f: frames.append((d, f))
        ) as enclave:

            async def double(body):
                await asyncio.sleep(0.05)
                return body * 2

            with pytest.raises(EnclaveError, match="host has no handler for 'host.double'"):
                await enclave.call("ask_host", b"Z")
            enclave.on_request("host.double", double)
            replies = await asyncio.gather(*(enclave.call("ask_host", bytes([65 + i])) for i in range(5)))
            assert replies == [bytes([65 + i]) * 2 for i in range(5)]
        from heddle.tee.enclave import wire

        def decode(direction):
            raw = b"".join(f for d, f in frames if d == direction)
            return [wire.decode_message(p) for p in wire.FrameDecoder().feed(raw)]

        e2h = [m for m in decode("e2h") if m.kind == wire.REQUEST]
        h2e = [m for m in decode("h2e") if m.kind == wire.REQUEST]
        assert sorted(m.txid for m in e2h) == list(range(1, 7))  # the enclave's own ids
        assert [m.txid for m in h2e] == list(range(1, 8))  # the host's ids, independent
        replies_to_host = [m for m in decode("e2h") if m.kind == wire.REPLY]
        assert {m.txid for m in replies_to_host} == set(range(1, 8))

    run(main())


def test_enclave_survives_garbage_and_forged_replies_from_the_host(platform, app):
    from heddle.tee.enclave import wire

    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            await enclave._send(wire.frame(b"\x09 not a message at all"))
            await enclave._send(wire.encode_message(wire.Message(wire.REPLY, 12345, "forged")))
            with pytest.raises(EnclaveError, match="unknown method 'nonsense'"):
                await enclave._request("nonsense", b"", 0)
            with pytest.raises(EnclaveError, match="no open session"):
                await enclave.relay(enclave.new_stream(), b"\x16\x03\x01")
            assert await enclave.call("sleep", b"0") == b"0"

    run(main())


def test_enclave_that_cannot_load_its_application_fails_to_start(platform, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def setup(ctx):\n    raise RuntimeError('no way')\n")

    async def main():
        with pytest.raises(EnclaveStartError, match="no way"):
            await Enclave.start(bad, platform=platform, timeout=20)

    run(main())
