"""SSH dialing: retries are bounded in time and failures name the host, never the key."""

import socket
import time

import pytest

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
