"""SSH dialing: retries are bounded in time and failures name the host, never the key."""

import socket
import threading
import time

import paramiko
import pytest

from components.providers import ssh
from components.providers.generated import _SshKeyProvider
from components.providers.ssh import SshError, connect


@pytest.fixture(scope="module")
def private_key():
    return _SshKeyProvider().create({"comment": "test"}).outs["private_key"]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_dial_retries_until_its_deadline_then_names_the_host(private_key):
    port = closed_port()
    conn = {"host": "127.0.0.1", "port": port, "user": "root", "private_key": private_key}
    started = time.monotonic()
    with pytest.raises(SshError) as e:
        connect(conn, dial_timeout=2)
    elapsed = time.monotonic() - started
    message = str(e.value)
    assert message.startswith(f"root@127.0.0.1:{port}: cannot connect after ")
    assert int(message.split("after ")[1].split(" ")[0]) >= 2  # it did retry
    assert elapsed < 30  # bounded (a loose guard against an unbounded loop, not a timing assertion)
    assert "PRIVATE KEY" not in message


def test_key_that_is_not_a_key_is_refused_before_dialing():
    with pytest.raises(SshError, match="not an Ed25519, ECDSA or RSA private key"):
        connect({"host": "127.0.0.1", "port": closed_port(), "private_key": "nonsense"}, dial_timeout=1)


class FakeChannel:
    def __init__(self, transport):
        self.transport = transport

    def close(self):
        with self.transport.lock:
            self.transport.open -= 1


class FakeTransport:
    """A live connection that refuses the first `refusals` sessions (as sshd at MaxSessions) and counts the
    sessions open at once."""

    def __init__(self, refusals=0):
        self.lock, self.open, self.most, self.refusals = threading.Lock(), 0, 0, refusals

    def is_active(self):
        return True

    def open_session(self):
        with self.lock:
            if self.refusals:
                self.refusals -= 1
                raise paramiko.ChannelException(1, "Administratively prohibited")
            self.open += 1
            self.most = max(self.most, self.open)
        return FakeChannel(self)


class FakeClient:
    def __init__(self, transport):
        self.transport, self.closed = transport, False

    def get_transport(self):
        return self.transport

    def close(self):
        self.closed = True


def test_a_live_connection_that_refuses_a_session_is_asked_again_and_kept(monkeypatch, private_key):
    client = FakeClient(FakeTransport(refusals=2))
    monkeypatch.setattr(ssh, "pooled", lambda conn, dial_timeout=None: client)
    with ssh.channel({"host": "192.0.2.1", "private_key": private_key}) as chan:
        assert isinstance(chan, FakeChannel)
    assert not client.closed  # the other sessions on it go on


def test_sessions_on_one_host_are_capped_below_sshds_limit(monkeypatch, private_key):
    transport = FakeTransport()
    monkeypatch.setattr(ssh, "pooled", lambda conn, dial_timeout=None: FakeClient(transport))
    conn = {"host": "192.0.2.2", "private_key": private_key}

    def use():
        with ssh.channel(conn):
            time.sleep(0.05)

    threads = [threading.Thread(target=use) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert transport.most == ssh.SESSIONS_PER_HOST < 10
