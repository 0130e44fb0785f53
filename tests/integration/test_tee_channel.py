"""Attested channels through an untrusted host that records, tampers with and replays."""

import asyncio
import hashlib
import logging
import os

import pytest

from heddle.tee import (
    AttestationError,
    AttestedSession,
    ChannelClosed,
    Enclave,
    EnclaveError,
    VerificationPolicy,
    VirtualPlatform,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

APP = """
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

def setup(ctx):
    signing_key = ec.generate_private_key(ec.SECP256K1())  # generated inside, stays inside
    ctx.add_public_key("signing", signing_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    @ctx.handler("sign")
    def sign(body, session):
        return signing_key.sign(body, ec.ECDSA(hashes.SHA256()))

    @ctx.handler("store")
    def store(body, session):
        session.state["secret"] = body
        ctx.log.info("stored a secret of %d bytes", len(body))
        return hashlib.sha256(body).digest()

    @ctx.handler("reveal_length")
    def reveal_length(body, session):
        return str(len(session.state.get("secret", b""))).encode()

    @ctx.handler("fail")
    def fail(body, session):
        raise ValueError("application says no")

    calls = []

    @ctx.handler("count")
    def count(body, session):
        calls.append(1)
        return str(len(calls)).encode()

    @ctx.host_handler("calls")
    def host_calls(body):
        return str(len(calls)).encode()
"""

SECRET = b"correct horse battery staple 7f3a9c"


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


class RecordingHost:
    """An untrusted host: relays for the client and records, tampers or replays."""

    def __init__(self, enclave, evidence_from=None):
        self.enclave = enclave
        self.evidence_from = evidence_from or enclave
        self.relayed: list[bytes] = []
        self.tamper_next = False
        self.replay_next: bytes | None = None
        self.cached_evidence = None

    async def evidence(self, nonce):
        ev = self.cached_evidence or await self.evidence_from.evidence(nonce)
        self.relayed.append(ev.to_bytes())
        return ev

    async def open_session(self):
        return await self.enclave.open_session()

    async def relay(self, session, data):
        if self.tamper_next:
            self.tamper_next = False
            data = data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:]
        if self.replay_next is not None:
            data, self.replay_next = self.replay_next, None
        self.relayed.append(data)
        out = await self.enclave.relay(session, data)
        self.relayed.append(out)
        return out

    async def close_session(self, session):
        await self.enclave.close_session(session)


def connect(host, platform, measurement):
    policy = VerificationPolicy.development([measurement])
    return AttestedSession.connect(host, policy=policy, verifiers=[platform.verifier()])


def test_secret_never_appears_in_relayed_bytes_boundary_frames_or_logs(platform, app, caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        frames = []
        async with await Enclave.start(app, platform=platform, tap=lambda d, f: frames.append(f)) as enclave:
            host = RecordingHost(enclave)
            session = await connect(host, platform, enclave.measurement)
            assert await session.call("store", SECRET) == hashlib.sha256(SECRET).digest()
            assert await session.call("reveal_length") == str(len(SECRET)).encode()
            await session.close()
        return host.relayed, frames

    relayed, frames = run(main())
    assert len(relayed) >= 5 and len(frames) >= 10
    everything = b"".join(relayed) + b"".join(frames)
    for needle in (SECRET, SECRET[:12], SECRET.hex().encode()):
        assert needle not in everything
    assert "stored a secret of" in caplog.text  # the enclave's log did reach the host
    assert SECRET.decode() not in caplog.text
    assert SECRET.decode()[:12] not in caplog.text


def test_tampered_record_closes_that_session_with_a_clear_error_only(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            host = RecordingHost(enclave)
            victim = await connect(host, platform, enclave.measurement)
            bystander = await connect(host, platform, enclave.measurement)
            await victim.call("count")
            host.tamper_next = True
            with pytest.raises(ChannelClosed, match="enclave closed the session: TLS failure"):
                await victim.call("count")
            assert victim.closed
            with pytest.raises(ChannelClosed):
                await victim.call("count")
            assert await bystander.call("count") == b"2"
            fresh = await connect(host, platform, enclave.measurement)
            assert await fresh.call("count") == b"3"

    run(main())


def test_replayed_record_is_rejected(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            host = RecordingHost(enclave)
            session = await connect(host, platform, enclave.measurement)
            await session.call("count")
            await session.call("count")
            second_request = host.relayed[-2]
            host.replay_next = second_request
            with pytest.raises(ChannelClosed, match="TLS failure"):
                await session.call("reveal_length")
            # the same record replayed into another session does not decrypt either
            other = await connect(host, platform, enclave.measurement)
            await other.call("count")
            host.replay_next = second_request
            with pytest.raises(ChannelClosed, match="TLS failure"):
                await other.call("count")
            assert await enclave.call("calls") == b"3"  # the replays ran nothing

    run(main())


def test_application_error_leaves_the_session_usable(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            session = await connect(RecordingHost(enclave), platform, enclave.measurement)
            with pytest.raises(EnclaveError, match="ValueError: application says no"):
                await session.call("fail")
            with pytest.raises(EnclaveError, match="unknown method 'nope'"):
                await session.call("nope")
            assert await session.call("count") == b"1"

    run(main())


def test_host_that_routes_to_another_enclave_is_caught_before_any_data(platform, app):
    async def main():
        async with (
            await Enclave.start(app, platform=platform) as attested,
            await Enclave.start(app, platform=platform) as impostor,
        ):
            assert attested.measurement == impostor.measurement  # same code, other keys
            host = RecordingHost(impostor, evidence_from=attested)
            with pytest.raises(AttestationError, match="not the attested enclave key"):
                await connect(host, platform, attested.measurement)
            assert await impostor.call("calls") == b"0"

    run(main())


def test_replayed_evidence_is_refused(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            host = RecordingHost(enclave)
            host.cached_evidence = await enclave.evidence(os.urandom(32))
            with pytest.raises(AttestationError, match="report data"):
                await connect(host, platform, enclave.measurement)

    run(main())


def test_application_keys_are_bound_in_the_evidence_the_client_verified(platform, app):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            session = await connect(RecordingHost(enclave), platform, enclave.measurement)
            signature = await session.call("sign", b"work order result")
            keys = session.attestation.public_keys
            assert set(keys) == {"tls", "signing"}
            key = serialization.load_der_public_key(keys["signing"])
            assert isinstance(key.curve, ec.SECP256K1)
            key.verify(signature, b"work order result", ec.ECDSA(hashes.SHA256()))

    run(main())


def test_production_policy_refuses_to_open_a_channel_to_a_virtual_enclave(platform, app):
    async def main():
        async with await Enclave.start(app, platform=platform) as enclave:
            policy = VerificationPolicy.production([enclave.measurement])
            with pytest.raises(AttestationError, match="'virtual' is not accepted"):
                await AttestedSession.connect(
                    RecordingHost(enclave), policy=policy, verifiers=[platform.verifier()]
                )

    run(main())
