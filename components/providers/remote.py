"""Remote steps on a host over SSH: a command with its undo, and a file whose content is checked on read.

Both read the host on refresh, the way pyinfra compares a fact before acting: a file whose content, mode or
owner changed by hand, or a command whose `check` fails, shows as drift in `pulumi preview --refresh` and is
put back by `pulumi up --refresh`. Content and stdin travel through the SSH channel, never on a command
line; outputs hold no command output unless asked for.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from . import ssh


class RemoteError(RuntimeError):
    pass


# A refresh must not hang on a host that is down (a lab node being recreated, a host rebooting): a read
# that cannot connect within this many seconds keeps the recorded state, and the next step that acts on
# the host fails with the full dial budget if it is still down.
READ_DIAL_TIMEOUT = 10


def _read_check(conn: dict, script: str, stdin: Optional[str] = None) -> Optional[bool]:
    """Runs a check on refresh: True/False, or None when the host cannot be reached."""
    try:
        result = ssh.execute(conn, f"sh -ec {shlex.quote(script)}", stdin=stdin, timeout=120, dial_timeout=READ_DIAL_TIMEOUT)
    except ssh.Unreachable:
        return None
    return result.exit_status == 0


def _undo(conn: dict, script: str, stdin: Optional[str], what: str) -> None:
    if conn.get("disposable"):
        return  # a lab node: its whole disk is deleted with it
    _run(conn, script, stdin, what)


def _run(conn: dict, script: str, stdin: Optional[str], what: str, timeout: float = 1800) -> ssh.Result:
    result = ssh.execute(conn, f"sh -ec {shlex.quote(script)}", stdin=stdin, timeout=timeout)
    if result.exit_status != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RemoteError(f"{ssh.describe(conn)}: {what} failed (exit {result.exit_status}): {tail}")
    return result


class _CommandProvider(ResourceProvider):
    def _do(self, props: dict[str, Any], script: str, what: str) -> dict[str, Any]:
        result = _run(props["connection"], script, props.get("stdin"), what, float(props.get("timeout") or 1800))
        return dict(props, stdout=result.stdout if props.get("keep_stdout") else None)

    def create(self, props):
        return CreateResult(id_=hashlib.sha256(props["create"].encode()).hexdigest()[:16], outs=self._do(props, props["create"], "create"))

    def diff(self, _id, olds, news):
        keys = ("create", "update", "delete", "stdin", "triggers", "check", "keep_stdout", "timeout")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        # A changed create or trigger runs the step again; with an `update` script, in place.
        replaces = [k for k in changed if k in ("create", "triggers", "stdin")] if not news.get("update") else []
        if olds.get("connection", {}).get("host") != news.get("connection", {}).get("host"):
            replaces.append("connection")
        return DiffResult(changes=bool(changed or replaces), replaces=replaces, delete_before_replace=False)

    def update(self, _id, olds, news):
        return UpdateResult(outs=self._do(news, news.get("update") or news["create"], "update"))

    def read(self, id_, props):
        if props.get("check") and _read_check(props["connection"], props["check"], props.get("stdin")) is False:
            return ReadResult(None, {})  # the fact is gone: the next up runs the step again
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id, props):
        if props.get("delete"):
            _undo(props["connection"], props["delete"], props.get("stdin"), "delete")


class RemoteCommand(Resource, module="remote", name="Command"):
    """A step on a host: `create` runs once (again when it, a trigger or stdin changes), `delete` undoes it,
    `check` (optional) is the fact that tells on refresh whether the step's effect is still there."""

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


def _file_fact(conn: dict, path: str) -> Optional[dict[str, str]]:
    """The file's hash, mode and owner on the host; {} if it is missing, None if the host is unreachable."""
    script = f"test -f {shlex.quote(path)} || exit 3; sha256sum {shlex.quote(path)}; stat -c '%a %U %G' {shlex.quote(path)}"
    try:
        result = ssh.execute(conn, script, timeout=60, dial_timeout=READ_DIAL_TIMEOUT)
    except ssh.Unreachable:
        return None
    if result.exit_status == 3:
        return {}
    if result.exit_status != 0:
        raise RemoteError(f"{ssh.describe(conn)}: cannot read {path}: {result.stderr.strip()}")
    digest, meta = result.stdout.splitlines()[0].split()[0], result.stdout.splitlines()[1].split()
    return {"sha256": digest, "mode": meta[0].zfill(4), "owner": meta[1], "group": meta[2]}


class _FileProvider(ResourceProvider):
    def _write(self, props):
        p = shlex.quote(props["path"])
        script = (
            f"install -D -m {props['mode']} -o {shlex.quote(props['owner'])} -g {shlex.quote(props['group'])} /dev/stdin {p}"
        )
        _run(props["connection"], script, props["content"], f"write {props['path']}")
        return dict(props, sha256=hashlib.sha256(props["content"].encode()).hexdigest())

    def create(self, props):
        return CreateResult(id_=props["path"], outs=self._write(props))

    def diff(self, _id, olds, news):
        want = hashlib.sha256(news["content"].encode()).hexdigest()
        changed = [k for k in ("mode", "owner", "group") if olds.get(k) != news.get(k)]
        if olds.get("sha256") != want:
            changed.append("content")
        replaces = ["path"] if olds.get("path") != news.get("path") else []
        if olds.get("connection", {}).get("host") != news.get("connection", {}).get("host"):
            replaces.append("connection")
        return DiffResult(changes=bool(changed or replaces), replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._write(news))

    def read(self, id_, props):
        fact = _file_fact(props["connection"], props["path"])
        if fact is None:
            return ReadResult(id_=id_, outs=props)  # unreachable: keep what was recorded
        if not fact:
            return ReadResult(None, {})
        # The host's actual content hash, mode and owner: a hand edit shows as a diff against the program's.
        return ReadResult(id_=id_, outs=dict(props, **fact))

    def delete(self, _id, props):
        _undo(props["connection"], f"rm -f {shlex.quote(props['path'])}", None, f"remove {props['path']}")


class RemoteFile(Resource, module="remote", name="File"):
    """A file on a host, written through stdin with its mode and owner; its `sha256` output is the hash of
    the content, a trigger for the service that reads it."""

    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        connection: pulumi.Input[dict],
        path: str,
        content: pulumi.Input[str],
        mode: str = "0644",
        owner: str = "root",
        group: str = "root",
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        props = {
            "connection": connection, "path": path, "content": content, "mode": mode, "owner": owner, "group": group,
            "sha256": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection", "content"]))
        super().__init__(_FileProvider(), name, props, opts)
