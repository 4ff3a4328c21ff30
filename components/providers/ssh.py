"""SSH to a host for the dynamic providers: bounded dial retries, commands with stdin, no secret in errors.

A connection is a plain dict (it travels through Pulumi inputs):
    {"host": "10.0.0.10", "port": 22, "user": "root", "private_key": "<PEM>", "dial_timeout": 120}
A lab node's connection also says `"disposable": True`: its disk is deleted with it, so undo steps skip it.
"""

from __future__ import annotations

import io
import logging
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import paramiko

# paramiko logs a traceback for every failed banner read while a host boots; the retry loop reports instead.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class SshError(RuntimeError):
    pass


class Unreachable(SshError):
    """No SSH session could be opened within the dial budget (as opposed to a refused key)."""


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str


def describe(conn: Mapping[str, Any]) -> str:
    return f"{conn.get('user', 'root')}@{conn['host']}:{int(conn.get('port', 22))}"


def _load_key(pem: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError):
            continue
    raise SshError("the SSH private key is not an Ed25519, ECDSA or RSA key without a passphrase")


def connect(conn: Mapping[str, Any], dial_timeout: Optional[float] = None) -> paramiko.SSHClient:
    """Connects, retrying refused or timed-out dials with backoff until `dial_timeout` seconds have passed.

    Authentication failures are not retried: they will not fix themselves.
    """
    key = _load_key(conn["private_key"])
    budget = float(dial_timeout if dial_timeout is not None else conn.get("dial_timeout", 120))
    deadline = time.monotonic() + budget
    delay, attempts = 0.5, 0
    while True:
        attempts += 1
        client = paramiko.SSHClient()
        # Hosts are addressed by their management IP from the stack config; their host keys are not known
        # in advance (lab nodes make theirs at first boot), so they are accepted on first contact.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                conn["host"],
                port=int(conn.get("port", 22)),
                username=conn.get("user", "root"),
                pkey=key,
                timeout=10,
                banner_timeout=10,
                auth_timeout=10,
                allow_agent=False,
                look_for_keys=False,
            )
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(15)
            return client
        except paramiko.AuthenticationException as e:
            client.close()
            raise SshError(f"{describe(conn)}: authentication failed: {e}") from None
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as e:
            client.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unreachable(
                    f"{describe(conn)}: cannot connect after {attempts} attempts in {budget:.0f}s: {e or type(e).__name__}"
                ) from None
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


def run(
    client: paramiko.SSHClient,
    command: str,
    stdin: Optional[str] = None,
    timeout: float = 1800,
) -> Result:
    """Runs `command` under `sh -e`; `stdin` (often a secret or a config file) is streamed, never echoed."""
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
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
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            chan.close()
            raise SshError(f"command timed out after {timeout:.0f}s")
    status = chan.recv_exit_status()
    chan.close()
    return Result(status, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))


def execute(conn: Mapping[str, Any], command: str, stdin: Optional[str] = None, timeout: float = 1800,
            dial_timeout: Optional[float] = None) -> Result:
    """Connects, runs one command, and closes: the unit every remote step is made of."""
    client = connect(conn, dial_timeout)
    try:
        return run(client, command, stdin=stdin, timeout=timeout)
    finally:
        client.close()
