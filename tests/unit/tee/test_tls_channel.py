"""The attested TLS 1.3 channel, both ends in memory (no processes)."""

import pytest

from heddle.tee import AttestationError, ChannelClosed, TlsClientChannel
from heddle.tee.enclave import wire
from heddle.tee.enclave.tls import ChannelError, TlsIdentity, TlsServerSession


@pytest.fixture(scope="module")
def identity():
    return TlsIdentity()


def handshake(identity, attested_key=None):
    server = TlsServerSession(identity.context)
    client = TlsClientChannel(attested_key or identity.public_key_der)
    out = client.initiate()
    while not client.handshake_done:
        assert server.receive(out) == []
        client.receive(server.outgoing())
        out = client.outgoing()
    return client, server, out


def roundtrip(client, server, method, body, pending=b""):
    requests = server.receive(pending + client.send_call(method, body))
    for payload in requests:
        m, b = wire.decode_call(payload)
        server.send(wire.encode_result(wire.OK, m.encode() + b":" + b))
    client.receive(server.outgoing())
    return client.results()


def test_request_and_reply_cross_the_channel_encrypted(identity):
    client, server, finished = handshake(identity)
    ciphertext = finished + client.send_call("put", b"SECRET-VALUE")
    assert b"SECRET-VALUE" not in ciphertext
    (payload,) = server.receive(ciphertext)
    assert wire.decode_call(payload) == ("put", b"SECRET-VALUE")
    server.send(wire.encode_result(wire.OK, b"REPLY-SECRET"))
    out = server.outgoing()
    assert b"REPLY-SECRET" not in out
    client.receive(out)
    assert client.results() == [(wire.OK, b"REPLY-SECRET")]
    assert roundtrip(client, server, "get", b"x") == [(wire.OK, b"get:x")]


def test_client_refuses_a_server_key_other_than_the_attested_one(identity):
    other = TlsIdentity()
    with pytest.raises(AttestationError, match="not the attested enclave key"):
        handshake(identity, attested_key=other.public_key_der)


def test_client_sends_nothing_before_the_handshake_is_verified(identity):
    client = TlsClientChannel(identity.public_key_der)
    client.initiate()
    with pytest.raises(ChannelClosed, match="handshake"):
        client.send_call("put", b"x")


def test_tampered_record_closes_the_server_session(identity):
    client, server, finished = handshake(identity)
    data = bytearray(finished + client.send_call("put", b"value"))
    data[-3] ^= 0x40
    with pytest.raises(ChannelError, match="TLS failure"):
        server.receive(bytes(data))
    with pytest.raises(ChannelError, match="closed"):
        server.receive(b"")


def test_replayed_record_is_rejected(identity):
    client, server, finished = handshake(identity)
    first = client.send_call("put", b"1")
    assert len(server.receive(finished + first)) == 1
    with pytest.raises(ChannelError, match="TLS failure"):
        server.receive(first)


def test_tampered_reply_closes_the_client_channel(identity):
    client, server, finished = handshake(identity)
    server.receive(finished + client.send_call("get", b""))
    server.send(wire.encode_result(wire.OK, b"reply"))
    out = bytearray(server.outgoing())
    out[-1] ^= 1
    with pytest.raises(ChannelClosed, match="TLS failure"):
        client.receive(bytes(out))
    with pytest.raises(ChannelClosed):
        client.send_call("get", b"")


def test_identity_repr_hides_the_private_key(identity):
    assert "hidden" in repr(identity)
    assert "PRIVATE" not in repr(identity)
