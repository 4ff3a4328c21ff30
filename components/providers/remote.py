"""Steps on a host over SSH: the host's access (its pinned key), a command with its undo, a file whose content is
read back, and a package set.

Each reads the host on refresh, the way pyinfra compares a fact before acting: a file whose content, mode or
owner changed by hand, a command whose `check` fails, or a package removed by hand shows as drift in
`pulumi preview --refresh` and is put back by `pulumi up --refresh`. Content and stdin travel through the SSH
channel, never on a command line; outputs hold no command output unless asked for, and no hash of any content.

How each kind is replaced, so that an undo can never undo its own successor:
- a command with an `update` script, a file, a package set and a database are changed in place;
- a command without one is replaced delete-first: the old undo runs, then the new step;
- every step moves to another host delete-first (the old host is cleaned, then the new one set up);
- a change of the connection alone (a pinned key, a name) rewrites the state and runs nothing.

A host that does not answer (or offers another SSH key) during a refresh is not read: its steps keep what was
recorded, and its HostAccess step says why, so the preview names the host instead of showing "unchanged".
"""

from __future__ import annotations

import hashlib
import shlex
import threading
import time
from typing import Any, Callable, Optional, TypeVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import ssh
from .base import Provider


T = TypeVar("T")


class RemoteError(RuntimeError):
    pass


# A refresh must not hang on a host that is down: a read that cannot connect within this many seconds keeps the
# recorded state, and every later read of the same host in this run skips it at once.
READ_DIAL_TIMEOUT = 10
_TROUBLE: dict[tuple, tuple[float, str]] = {}  # (host, port) -> (when, why), for reads only
_TROUBLE_LOCK = threading.Lock()
_TROUBLE_TTL = 120


def _where(conn: dict) -> tuple:
    return conn["host"], int(conn.get("port", 22))


def trouble(conn: dict) -> Optional[str]:
    """Why reads of this host are skipped in this run, if they are."""
    with _TROUBLE_LOCK:
        found = _TROUBLE.get(_where(conn))
    return found[1] if found and time.monotonic() - found[0] < _TROUBLE_TTL else None


def _note_trouble(conn: dict, why: str) -> None:
    with _TROUBLE_LOCK:
        _TROUBLE[_where(conn)] = (time.monotonic(), why)


def when_readable(conn: dict, read: Callable[[], T]) -> Optional[T]:
    """`read()` for a refresh, unless the host cannot be read in this run: None then, with the reason noted (it
    did not answer within READ_DIAL_TIMEOUT, or it offers another key: nothing is sent to it)."""
    if trouble(conn):
        return None
    try:
        return read()
    except ssh.Unreachable as e:
        _note_trouble(conn, f"no answer in {READ_DIAL_TIMEOUT}s ({str(e).split(': ', 1)[-1]})")
    except ssh.HostKeyChanged as e:
        _note_trouble(conn, str(e).split(": ", 1)[-1])
    return None


def read_on(conn: dict, command: str, stdin: Optional[str] = None, timeout: float = 120) -> Optional[ssh.Result]:
    """Runs a read-only command for a refresh; None when the host cannot be read (when_readable). A session that
    ended without the command's exit status (its connection dropped) is read again once, on a new connection."""
    def read() -> ssh.Result:
        result = ssh.execute(conn, command, stdin=stdin, timeout=timeout, dial_timeout=READ_DIAL_TIMEOUT)
        if result.exit_status == ssh.NO_STATUS:
            ssh.forget(conn)
            result = ssh.execute(conn, command, stdin=stdin, timeout=timeout, dial_timeout=READ_DIAL_TIMEOUT)
        return result

    return when_readable(conn, read)


# How long a step may run on a host, by kind, in seconds; a stack's `deadlines` (carried in the connection) wins,
# then a step's own. At its deadline the host's own `timeout` stops the step and everything it started.
DEADLINES = {"command": 1800, "packages": 3600, "file": 300}
DEADLINE_EXIT = (124, 137)  # `timeout`: the step was stopped (TERM, or KILL 10 s later)


def deadline(conn: dict, kind: str, own: Optional[float] = None) -> float:
    return float((conn.get("deadlines") or {}).get(kind) or own or DEADLINES[kind])


def _tail(result: ssh.Result) -> str:
    """The end of a step's output: tools such as dpkg say why on stdout."""
    return "\n".join((result.stdout.strip().splitlines()[-8:] + result.stderr.strip().splitlines())[-15:])


def run_on(conn: dict, script: str, stdin: Optional[str], what: str, kind: str = "command",
           timeout: Optional[float] = None) -> ssh.Result:
    seconds = deadline(conn, kind, timeout)
    command = f"timeout -k 10 {seconds:.0f} sh -ec {shlex.quote(script)}"
    started = time.monotonic()
    result = ssh.execute(conn, command, stdin=stdin, timeout=seconds + 30)
    if result.exit_status in DEADLINE_EXIT and time.monotonic() - started >= seconds:
        raise RemoteError(f"{ssh.describe(conn)}: {what} did not finish within its deadline of {seconds:.0f}s and was "
                          f"stopped there ({kind} steps: `deadlines.{kind}` in the stack config): {_tail(result)}")
    if result.exit_status == ssh.NO_STATUS:
        raise RemoteError(f"{ssh.describe(conn)}: {what} was cut off: the connection closed before it ended (the host "
                          "went down or was restarted); the next up runs it again")
    if result.exit_status != 0:
        raise RemoteError(f"{ssh.describe(conn)}: {what} failed (exit {result.exit_status}): {_tail(result)}")
    return result


def undo_on(conn: dict, script: str, stdin: Optional[str], what: str, kind: str = "command") -> None:
    if conn.get("disposable"):
        return  # a disposable lab node: its whole disk is deleted with it
    run_on(conn, script, stdin, what, kind)


# What of a connection is compared: another host replaces a step; anything else is a change of state only. A
# new connection without a pinned key keeps the recorded pin (a pin is never dropped by a diff).
_CONNECTION_FIELDS = ("port", "user", "private_key", "host_key", "name", "dial_timeout", "disposable")


def _connection_changed(olds: dict, news: dict) -> bool:
    old, new = olds.get("connection") or {}, news.get("connection") or {}
    return any(old.get(f) != new.get(f) for f in _CONNECTION_FIELDS if not (f == "host_key" and not new.get(f)))


def _pinned(olds: dict, news: dict) -> dict:
    """The connection to record: the new one, keeping the recorded host key if the new one pins none."""
    conn = dict(news["connection"])
    if not conn.get("host_key") and (olds.get("connection") or {}).get("host_key"):
        conn["host_key"] = olds["connection"]["host_key"]
    return conn


class HostStepProvider(Provider):
    """A step on the host in `connection`: moving to another host replaces it (delete-first); an unknown
    connection during a preview is a change, not a replacement (it is the same host, not yet ready)."""

    replace_on = ("connection",)
    changes_in_place: tuple[str, ...] = ()  # inputs changed by `update` itself (the rest only rewrite state)

    def replaces(self, olds, news, key):
        if key == "connection":
            return (olds.get("connection") or {}).get("host") != (news.get("connection") or {}).get("host")
        return super().replaces(olds, news, key)

    def replace_when_unknown(self, key, news):
        return key != "connection"

    def compare(self, olds, news) -> DiffResult:
        changed = [k for k in self.inputs if k != "connection" and olds.get(k) != news.get(k)]
        replaces = [k for k in self.replace_on if self.replaces(olds, news, k)]
        changes = bool(changed or replaces or _connection_changed(olds, news))
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def acts(self, olds, news) -> bool:
        """Whether an update has anything to do on the host (otherwise it only records the new inputs)."""
        return any(olds.get(k) != news.get(k) for k in self.changes_in_place)


# ---------------------------------------------------------------------------------------------- host access


class _AccessProvider(HostStepProvider):
    """The host's SSH access: its key verified (pinned by the lab or the stack config) or met for the first time
    and recorded; `answer` says, after a refresh, whether the host could be read."""

    inputs = ("connection",)
    outputs = ("host_key", "answer")

    def _verify(self, conn: dict) -> str:
        offered = ssh.host_key(conn, float(conn.get("dial_timeout", 120)))
        pinned = dict(conn, host_key=offered)
        ssh.execute(pinned, "true", timeout=60)  # the login works with the pinned key
        return offered

    def create(self, props):
        key = self._verify(props["connection"])
        return CreateResult(id_=props["connection"]["host"], outs=dict(props, host_key=key, answer="answers"))

    def compare(self, olds, news):
        diff = super().compare(olds, news)
        pin = news["connection"].get("host_key")
        if (pin and pin != olds.get("host_key")) or olds.get("answer") != "answers":
            return DiffResult(changes=True, replaces=diff.replaces, delete_before_replace=True)
        return diff

    def update(self, _id, olds, news):
        conn = dict(news["connection"])
        conn["host_key"] = conn.get("host_key") or olds.get("host_key")  # first use's key, kept until re-pinned
        return UpdateResult(outs=dict(news, host_key=self._verify(conn), answer="answers"))

    def read_known(self, id_, props):
        conn = dict(props["connection"], host_key=props.get("host_key") or props["connection"].get("host_key"))
        answers = when_readable(conn, lambda: ssh.host_key(conn, READ_DIAL_TIMEOUT)) is not None
        answer = "answers" if answers else f"{trouble(conn)}; this host's steps were not read and show as last recorded"
        return ReadResult(id_=id_, outs=dict(props, answer=answer))

    def delete(self, _id, _props):
        pass


class HostAccess(Resource, module="remote", name="HostAccess"):
    """A host's SSH access. `host_key` is the key pinned for every later step: the connection's own (the lab
    knows its nodes' keys; a stack may set `hostKey`), or the one met at first contact."""

    host_key: pulumi.Output[str]
    answer: pulumi.Output[str]

    def __init__(self, name: str, connection: pulumi.Input[dict], opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection"]))
        super().__init__(_AccessProvider(), name, {"connection": connection, "host_key": None, "answer": None}, opts)


# ---------------------------------------------------------------------------------------------- commands


class _CommandProvider(HostStepProvider):
    inputs = ("connection", "create", "update", "delete", "stdin", "triggers", "check", "keep_stdout", "timeout")
    replace_on = ("connection", "create", "stdin", "triggers")
    changes_in_place = ("create", "stdin", "triggers")

    def _do(self, props: dict[str, Any], script: str, what: str) -> dict[str, Any]:
        result = run_on(props["connection"], script, props.get("stdin"), what, timeout=props.get("timeout"))
        return dict(props, stdout=result.stdout if props.get("keep_stdout") else None)

    def create(self, props):
        return CreateResult(id_=hashlib.sha256(props["create"].encode()).hexdigest()[:16],
                            outs=self._do(props, props["create"], "create"))

    def replaces(self, olds, news, key):
        if key in self.changes_in_place:  # run again: in place with an update script, else delete-first
            return not news.get("update") and olds.get(key) != news.get(key)
        return super().replaces(olds, news, key)

    def replace_when_unknown(self, key, news):
        return key != "connection" and not news.get("update")  # an unknown update script still has a text

    def update(self, _id, olds, news):
        news = dict(news, connection=_pinned(olds, news))
        if self.acts(olds, news):
            return UpdateResult(outs=self._do(news, news.get("update") or news["create"], "update"))
        return UpdateResult(outs=dict(news, stdout=olds.get("stdout")))

    def read_known(self, id_, props):
        if props.get("check"):
            result = read_on(props["connection"], f"sh -ec {shlex.quote(props['check'])}", props.get("stdin"))
            if result is not None and result.exit_status != 0:
                return ReadResult(None, {})  # the fact is gone: the next up runs the step again
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id, props):
        if props.get("delete"):
            undo_on(props["connection"], props["delete"], props.get("stdin"), "delete")


class RemoteCommand(Resource, module="remote", name="Command"):
    """A step on a host: `create` runs once (again when it, a trigger or stdin changes: in place with `update`,
    otherwise after the old step's `delete`), `delete` undoes it, `check` (optional) is the fact that tells on
    refresh whether the step's effect is still there."""

    stdout: pulumi.Output[Optional[str]]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[dict],
        create: pulumi.Input[str],
        delete: Optional[pulumi.Input[str]] = None,
        update: Optional[pulumi.Input[str]] = None,
        check: Optional[pulumi.Input[str]] = None,
        stdin: Optional[pulumi.Input[str]] = None,
        triggers: Optional[list] = None,
        keep_stdout: bool = False,
        timeout: int = 1800,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        props = {
            "connection": connection, "create": create, "delete": delete, "update": update, "check": check,
            "stdin": stdin, "triggers": triggers or [], "keep_stdout": keep_stdout, "timeout": timeout, "stdout": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection", "stdin"]))
        super().__init__(_CommandProvider(), name, props, opts)


# ---------------------------------------------------------------------------------------------- files


def _file_fact(conn: dict, path: str) -> Optional[dict[str, Any]]:
    """The file's content, mode and owner on the host; the file missing: content None; None if not readable."""
    p = shlex.quote(path)
    result = read_on(conn, f"test -f {p} || exit 3; stat -c '%a %U %G' {p}; cat {p}", timeout=60)
    if result is None:
        return None
    if result.exit_status == 3:
        return {"content": None, "mode": None, "owner": None, "group": None}
    if result.exit_status != 0:
        raise RemoteError(f"{ssh.describe(conn)}: cannot read {path} (exit {result.exit_status}): {result.stderr.strip()}")
    meta, _, content = result.stdout.partition("\n")
    mode, owner, group = meta.split()
    return {"content": content, "mode": mode.zfill(4), "owner": owner, "group": group}


class _FileProvider(HostStepProvider):
    """`version` counts the writes: a service restarts on it, so exactly when a file it reads was (re)written."""

    inputs = ("connection", "path", "content", "mode", "owner", "group", "shown")
    replace_on = ("connection", "path")
    changes_in_place = ("content", "mode", "owner", "group")
    outputs = ("version",)

    def _write(self, props, version: int):
        p = shlex.quote(props["path"])
        script = f"install -D -m {props['mode']} -o {shlex.quote(props['owner'])} -g {shlex.quote(props['group'])} /dev/stdin {p}"
        run_on(props["connection"], script, props["content"], f"write {props['path']}", "file")
        return dict(props, version=version)

    def create(self, props):
        return CreateResult(id_=props["path"], outs=self._write(props, 1))

    def update(self, _id, olds, news):
        news = dict(news, connection=_pinned(olds, news))
        if self.acts(olds, news):
            return UpdateResult(outs=self._write(news, int(olds.get("version") or 0) + 1))
        return UpdateResult(outs=dict(news, version=olds.get("version") or 1))  # (1: first recorded now)

    def read_known(self, id_, props):
        fact = _file_fact(props["connection"], props["path"])
        if fact is None:
            return ReadResult(id_=id_, outs=props)  # not readable now: see HostAccess
        # What the host has: a hand edit (or a removed file) shows as a diff against the program's content.
        outs = {k: v for k, v in props.items() if k != "sha256"}  # (the hash an earlier release kept)
        return ReadResult(id_=id_, outs=dict(outs, **fact))

    def delete(self, _id, props):
        undo_on(props["connection"], f"rm -f {shlex.quote(props['path'])}", None, f"remove {props['path']}", "file")


class RemoteFile(Resource, module="remote", name="File"):
    """A file on a host, written through stdin with its mode and owner. `version` (a count of its writes) is
    the trigger of the service that reads it. `shown`: for a secret `content`, the same text with its secrets
    masked (not secret: what a preview's report diffs); nothing is done with it on the host."""

    version: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[dict],
        path: str,
        content: pulumi.Input[str],
        mode: str = "0644",
        owner: str = "root",
        group: str = "root",
        shown: Optional[pulumi.Input[str]] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        props = {
            "connection": connection, "path": path, "content": content, "mode": mode, "owner": owner, "group": group,
            "shown": shown, "version": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection", "content"]))
        super().__init__(_FileProvider(), name, props, opts)


# ---------------------------------------------------------------------------------------------- packages


def _names(packages) -> str:
    return " ".join(shlex.quote(p) for p in packages)


class _PackagesProvider(HostStepProvider):
    """`installed`: which of the packages the host has. A package removed by hand is drift, put back in place;
    one dropped from the set is removed by the update."""

    inputs = ("connection", "packages", "install", "remove", "query")
    changes_in_place = ("packages", "install")
    outputs = ("installed",)

    def _installed(self, props) -> Optional[list[str]]:
        result = read_on(props["connection"], props["query"].format(packages=_names(props["packages"])))
        if result is None:
            return None
        return sorted({line.split()[0] for line in result.stdout.splitlines() if line.split()[1:] == ["installed"]}
                      & set(props["packages"]))

    def _install(self, props, gone=()):
        if gone:
            run_on(props["connection"], props["remove"].format(packages=_names(gone)), None, "remove " + " ".join(gone),
                   "packages")
        run_on(props["connection"], props["install"].format(packages=_names(props["packages"])), None, "install",
               "packages")
        return dict(props, installed=sorted(props["packages"]))

    def create(self, props):
        return CreateResult(id_=hashlib.sha256(" ".join(props["packages"]).encode()).hexdigest()[:16],
                            outs=self._install(props))

    def compare(self, olds, news):
        diff = super().compare(olds, news)
        if olds.get("installed") is not None and olds["installed"] != sorted(news["packages"]):
            return DiffResult(changes=True, replaces=diff.replaces, delete_before_replace=True)
        return diff

    def update(self, _id, olds, news):
        news = dict(news, connection=_pinned(olds, news))
        if self.acts(olds, news) or olds.get("installed") != sorted(news["packages"]):
            # (a package set an earlier release recorded as a plain command has no `packages`: nothing to drop)
            gone = [p for p in olds.get("packages") or [] if p not in news["packages"]]
            return UpdateResult(outs=self._install(news, gone))
        return UpdateResult(outs=dict(news, installed=olds.get("installed")))

    def read_known(self, id_, props):
        installed = self._installed(props)
        return ReadResult(id_=id_, outs=props if installed is None else dict(props, installed=installed))

    def delete(self, _id, props):
        undo_on(props["connection"], props["remove"].format(packages=_names(props["packages"])), None,
                "remove packages", "packages")


class PackageSet(Resource, module="remote", name="Packages"):
    """Distribution packages on a host. `install`/`remove`/`query` are the platform's commands with a
    `{packages}` placeholder; `query` prints "NAME STATUS" lines."""

    installed: pulumi.Output[list]

    def __init__(self, name: str, connection: pulumi.Input[dict], packages: list[str], install: str, remove: str,
                 query: str, opts: Optional[pulumi.ResourceOptions] = None):
        props = {"connection": connection, "packages": list(packages), "install": install, "remove": remove,
                 "query": query, "installed": None}
        # An earlier release recorded a package set as a plain command: the same resource, not a new one (a new one
        # would purge every package once the old one is deleted).
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"], aliases=[pulumi.Alias(type_="pulumi-python:dynamic/remote:Command")]))
        super().__init__(_PackagesProvider(), name, props, opts)
