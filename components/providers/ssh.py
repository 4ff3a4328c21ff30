"""SSH to a host for the dynamic providers: bounded dial retries, pinned host keys, one pooled connection per
host, commands with stdin, no secret in errors.

A connection is a plain dict (it travels through Pulumi inputs):
    {"host": "10.0.0.10", "port": 22, "user": "root", "private_key": "<PEM>", "dial_timeout": 120,
     "name": "controller", "host_key": "ssh-ed25519 AAAA..."}
`host_key` pins the host's key: a host that offers another one is refused before anything is sent (no
authentication, no command, no stdin). Without it (a host met for the first time) any key is accepted; the
Host component records the key it met (components/providers/remote.py, HostAccess) and pins it from then on.
A lab node's connection may also say `"disposable": True`: its disk is deleted with it, so undo steps skip it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

import paramiko

# paramiko logs a traceback for every failed banner read while a host boots; the retry loop reports instead.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class SshError(RuntimeError):
    pass


class Unreachable(SshError):
    """No SSH session could be opened within the dial budget (as opposed to a refused key)."""


class HostKeyChanged(SshError):
    """The host offered a key other than the pinned one: nothing was sent to it."""


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str


def describe(conn: Mapping[str, Any]) -> str:
    where = f"{conn.get('user', 'root')}@{conn['host']}:{int(conn.get('port', 22))}"
    return f"{conn['name']} ({where})" if conn.get("name") else where


def load_key(pem: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(pem))
        except paramiko.PasswordRequiredException:
            raise SshError("the SSH private key is encrypted: give a key without a passphrase") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise SshError("the SSH private key is not an Ed25519, ECDSA or RSA private key (OpenSSH or PEM), or is cut short")


def _public_key(line: str) -> paramiko.PKey:
    kind, blob = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))


def key_line(key: paramiko.PKey) -> str:
    """A host key as `known_hosts` and `ssh-keyscan` write it, without the host: "ssh-ed25519 AAAA..."."""
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a key line, as `ssh-keygen -l` shows it."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_changed(conn: Mapping[str, Any], offered: str, pinned: str) -> HostKeyChanged:
    """The one-line error for a host offering another key than the pinned one, with how to accept it."""
    return HostKeyChanged(
        f"{describe(conn)}: offers SSH host key {fingerprint(offered)}, not the pinned {fingerprint(pinned)}: "
        "nothing was sent to it. If the host was reinstalled, pin its new key: set hostKey: "
        f"\"{' '.join(offered.split()[:2])}\" on this host in the stack config (README, 'Host keys')")


def _dial(conn: Mapping[str, Any], budget: float, attempt):
    """Calls `attempt()` until it returns, retrying dials that fail for network reasons with backoff until
    `budget` seconds have passed. Key and authentication failures are not retried: they will not fix
    themselves."""
    deadline = time.monotonic() + budget
    delay, attempts = 0.5, 0
    while True:
        attempts += 1
        try:
            return attempt()
        except (HostKeyChanged, SshError):
            raise
        except paramiko.BadHostKeyException as e:
            raise key_changed(conn, key_line(e.key), key_line(e.expected_key)) from None
        except paramiko.AuthenticationException as e:
            raise SshError(f"{describe(conn)}: authentication failed: {e}") from None
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as e:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unreachable(
                    f"{describe(conn)}: cannot connect after {attempts} attempts in {budget:.0f}s: {e or type(e).__name__}"
                ) from None
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


def connect(conn: Mapping[str, Any], dial_timeout: Optional[float] = None) -> paramiko.SSHClient:
    """A new, authenticated client; the host's key must be the pinned one when the connection pins one."""
    key = load_key(conn["private_key"])
    budget = float(dial_timeout if dial_timeout is not None else conn.get("dial_timeout", 120))
    port = int(conn.get("port", 22))

    def attempt() -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if conn.get("host_key"):
            name = conn["host"] if port == 22 else f"[{conn['host']}]:{port}"
            pinned = _public_key(conn["host_key"])
            client.get_host_keys().add(name, pinned.get_name(), pinned)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # first contact: see HostAccess
        try:
            client.connect(conn["host"], port=port, username=conn.get("user", "root"), pkey=key, timeout=10,
                           banner_timeout=10, auth_timeout=10, allow_agent=False, look_for_keys=False)
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    return _dial(conn, budget, attempt)


def host_key(conn: Mapping[str, Any], dial_timeout: float) -> str:
    """The key the host offers (the key exchange only: nothing is authenticated or sent); HostKeyChanged if
    the connection pins another one."""

    def attempt() -> str:
        sock = socket.create_connection((conn["host"], int(conn.get("port", 22))), timeout=10)
        transport = paramiko.Transport(sock)
        try:
            if conn.get("host_key"):  # ask for the pinned key's type, so a changed key shows as changed
                transport._preferred_keys = [conn["host_key"].split()[0]]  # noqa: SLF001 (paramiko has no API)
            transport.start_client(timeout=10)
            return key_line(transport.get_remote_server_key())
        finally:
            transport.close()

    offered = _dial(conn, dial_timeout, attempt)
    if conn.get("host_key") and offered.split()[:2] != conn["host_key"].split()[:2]:
        raise key_changed(conn, offered, conn["host_key"])
    return offered


NO_STATUS = -1  # a session that ended without the command's exit status (paramiko's value)


def run(client: paramiko.SSHClient, command: str, stdin: Optional[str] = None, timeout: float = 1800) -> Result:
    """Runs `command` on a new session of `client`; `stdin` (often a secret or a config file) is streamed, never
    echoed."""
    return _run(client.get_transport().open_session(), command, stdin, timeout)  # type: ignore[union-attr]


def _run(chan: paramiko.Channel, command: str, stdin: Optional[str], timeout: float) -> Result:
    chan.settimeout(timeout)
    chan.exec_command(command)
    if stdin is not None:
        chan.sendall(stdin.encode())
    chan.shutdown_write()
    out, err = io.BytesIO(), io.BytesIO()
    deadline = time.monotonic() + timeout
    while True:
        select.select([chan], [], [], 1.0)  # a paramiko channel is selectable: wakes on data or exit
        while chan.recv_ready():
            out.write(chan.recv(65536))
        while chan.recv_stderr_ready():
            err.write(chan.recv_stderr(65536))
        # Done when the command has exited AND the host has sent all its output: sshd may send the exit status
        # before the last of the output, so the end of the output (EOF) is what ends the read, not the status.
        if chan.exit_status_ready() and (chan.eof_received or chan.closed) and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            chan.close()
            raise SshError(f"command timed out after {timeout:.0f}s")
    status = chan.recv_exit_status()
    chan.close()
    return Result(status, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))


# One authenticated connection per host (and key) for the provider process's life, which is one engine run:
# every step on a host opens a session on it instead of dialing and authenticating again.
_POOL: dict[tuple, paramiko.SSHClient] = {}
_POOL_LOCK = threading.Lock()
# Sessions open at once on one host's connection: below OpenSSH's default MaxSessions (10), which refuses more.
SESSIONS_PER_HOST = 8
_SESSIONS: dict[tuple, threading.BoundedSemaphore] = {}


def _sessions(conn: Mapping[str, Any]) -> threading.BoundedSemaphore:
    with _POOL_LOCK:
        return _SESSIONS.setdefault(_pool_key(conn)[:3], threading.BoundedSemaphore(SESSIONS_PER_HOST))


def _pool_key(conn: Mapping[str, Any]) -> tuple:
    return (conn["host"], int(conn.get("port", 22)), conn.get("user", "root"), conn.get("host_key") or "",
            hashlib.sha256(conn["private_key"].encode()).hexdigest())


def pooled(conn: Mapping[str, Any], dial_timeout: Optional[float] = None) -> paramiko.SSHClient:
    key = _pool_key(conn)
    with _POOL_LOCK:
        client = _POOL.get(key)
        transport = client.get_transport() if client else None
        if transport is not None and transport.is_active():
            return client  # type: ignore[return-value]
        _POOL.pop(key, None)
    client = connect(conn, dial_timeout)
    with _POOL_LOCK:
        kept = _POOL.setdefault(key, client)
    if kept is not client:  # another thread dialed the same host meanwhile
        client.close()
    return kept


def forget(conn: Mapping[str, Any], client: Optional[paramiko.SSHClient] = None) -> None:
    """Closes the host's pooled connection; with `client`, only if that is still the pooled one (not a connection
    another thread dialed since)."""
    with _POOL_LOCK:
        key = _pool_key(conn)
        found = _POOL.get(key)
        if found is not None and client in (None, found):
            del _POOL[key]
        else:
            found = None
    if found is not None:
        found.close()


def _dead(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is None or not transport.is_active()


REFUSED_SESSION_WAIT = 60  # how long a host that refuses one more session (sshd's MaxSessions) is asked again


@contextlib.contextmanager
def channel(conn: Mapping[str, Any], dial_timeout: Optional[float] = None) -> Iterator[paramiko.Channel]:
    """A session on the host's pooled connection (dialed on first use), at most SESSIONS_PER_HOST open at once.
    A connection that died since (a host rebooted) is dialed again once; a live one that refuses a session (the
    host may still count sessions just closed) is asked again for up to REFUSED_SESSION_WAIT seconds. Only a dead
    connection leaves the pool: the other sessions on a live one go on."""
    with _sessions(conn):
        deadline, redialed = time.monotonic() + REFUSED_SESSION_WAIT, False
        while True:
            client = pooled(conn, dial_timeout)
            try:
                chan = client.get_transport().open_session()  # type: ignore[union-attr]
                break
            except (paramiko.SSHException, EOFError, OSError, AttributeError) as e:  # (AttributeError: closed)
                if not _dead(client) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                forget(conn, client)
                if redialed:
                    raise SshError(f"{describe(conn)}: cannot open a session: {e or type(e).__name__}") from None
                redialed = True
        try:
            yield chan
        except (paramiko.SSHException, EOFError, OSError):
            if _dead(client):
                forget(conn, client)
            raise
        finally:
            chan.close()


def execute(conn: Mapping[str, Any], command: str, stdin: Optional[str] = None, timeout: float = 1800,
            dial_timeout: Optional[float] = None) -> Result:
    """Runs one command in a session of the host's pooled connection (`channel`); a connection that breaks while
    it runs is dialed again and the command run once more, unless the command timed out."""
    for retry in (False, True):
        try:
            with channel(conn, dial_timeout) as chan:
                return _run(chan, command, stdin, timeout)
        except (paramiko.SSHException, EOFError, OSError) as e:
            if retry or isinstance(e, socket.timeout):
                raise SshError(f"{describe(conn)}: the connection broke: {e or type(e).__name__}") from None
    raise AssertionError("unreachable")
