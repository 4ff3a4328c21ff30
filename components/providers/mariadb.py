"""A service's databases, user and grants in MariaDB, through pymysql, with a real `read`.

The session runs over the controller's SSH connection to MariaDB's local socket (`socat` on the host
joins the SSH channel to the socket), so it works wherever MariaDB is reachable only from the controller,
and root authenticates the Debian way, by unix_socket: there is no root password to keep.

`read` reports what the server has: the databases present, each account's grants, and whether each
account's password hash matches. A dropped grant or a changed password shows in `pulumi preview --refresh`
as a diff, and `pulumi up --refresh` applies the idempotent create again.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
from typing import Any, Iterator, Optional

import pulumi
import pymysql
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import ssh
from .remote import READ_DIAL_TIMEOUT, HostStepProvider, _pinned, when_readable


class DatabaseError(RuntimeError):
    pass


@contextlib.contextmanager
def session(conn: dict, socket_path: str, dial_timeout=None) -> Iterator[pymysql.cursors.Cursor]:
    with ssh.channel(conn, dial_timeout) as channel:  # a session on the host's one connection
        channel.exec_command(f"exec socat STDIO UNIX-CONNECT:{shlex.quote(socket_path)}")
        # No TLS: the session is already a channel of the SSH connection (and PyMySQL would try TLS whenever the
        # server offers it, as MariaDB 11 does, and fail to wrap a channel that is not a socket).
        db = pymysql.connect(user="root", password="", defer_connect=True, autocommit=True, charset="utf8mb4",
                             ssl_disabled=True)
        try:
            db.connect(sock=channel)
        except pymysql.err.OperationalError as e:
            raise DatabaseError(f"{ssh.describe(conn)}: cannot open a MariaDB session on {socket_path}: {e}") from None
        try:
            yield db.cursor()
        finally:
            db.close()


def native_hash(password: str) -> str:
    """MariaDB's mysql_native_password hash, to compare with the server's without sending the password."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _accounts(props: dict) -> list[str]:
    return [f"{props['user']}@{host}" for host in props["hosts"]]


def wanted(props: dict) -> dict[str, Any]:
    """The facts a correct server shows: every database, and every account granted all on each."""
    return {
        "databases_present": sorted(props["databases"]),
        "grants_present": sorted(f"{a}:{db}" for a in _accounts(props) for db in props["databases"]),
        "passwords_match": sorted(_accounts(props)),
    }


def facts(cur, props: dict) -> dict[str, Any]:
    cur.execute("SHOW DATABASES")
    databases = {row[0] for row in cur.fetchall()}
    grants, matching = [], []
    for host in props["hosts"]:
        account = f"{props['user']}@{host}"
        cur.execute("SELECT Password FROM mysql.user WHERE User=%s AND Host=%s", (props["user"], host))
        row = cur.fetchone()
        if row is None:
            continue
        if row[0] == native_hash(props["password"]):
            matching.append(account)
        cur.execute("SELECT Db FROM mysql.db WHERE User=%s AND Host=%s AND Select_priv='Y' AND Insert_priv='Y' "
                    "AND Update_priv='Y' AND Delete_priv='Y' AND Create_priv='Y' AND Drop_priv='Y' AND "
                    "Alter_priv='Y' AND Index_priv='Y' AND References_priv='Y'", (props["user"], host))
        granted = {r[0] for r in cur.fetchall()}
        grants += [f"{account}:{db}" for db in props["databases"] if db in granted]
    return {
        "databases_present": sorted(d for d in props["databases"] if d in databases),
        "grants_present": sorted(grants),
        "passwords_match": sorted(matching),
    }


def _drop(cur, user: str, hosts, databases) -> None:
    for host in hosts:
        cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
    for db in databases:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


def _ensure(cur, props: dict) -> None:
    for db in props["databases"]:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    for host in props["hosts"]:
        cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (props["user"], host, props["password"]))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (props["user"], host, props["password"]))
        for db in props["databases"]:
            cur.execute(f"GRANT ALL PRIVILEGES ON `{db}`.* TO %s@%s", (props["user"], host))


class _DatabaseProvider(HostStepProvider):
    """Changed in place: accounts of host patterns no longer listed are dropped, databases no longer listed
    are dropped with their grants (as a destroy would), the rest made idempotently. Another user replaces it."""

    inputs = ("connection", "socket", "databases", "user", "password", "hosts")
    replace_on = ("connection", "user")

    def _apply(self, props, gone_hosts=(), gone_databases=()):
        with session(props["connection"], props["socket"]) as cur:
            _drop(cur, props["user"], gone_hosts, gone_databases)
            _ensure(cur, props)
            outs = facts(cur, props)
        if outs != wanted(props):
            raise DatabaseError(f"{props['user']}: the server does not show the grants just made: {outs}")
        return dict(props, **outs)

    def create(self, props):
        return CreateResult(id_=f"{props['user']}:{','.join(props['databases'])}", outs=self._apply(props))

    def compare(self, olds, news):
        diff = super().compare(olds, news)
        if any(olds.get(k) != v for k, v in wanted(news).items()):  # drift found by read
            return DiffResult(changes=True, replaces=diff.replaces, delete_before_replace=True)
        return diff

    def update(self, _id, olds, news):
        news = dict(news, connection=_pinned(olds, news))
        return UpdateResult(outs=self._apply(
            news, [h for h in olds["hosts"] if h not in news["hosts"]],
            [d for d in olds["databases"] if d not in news["databases"]]))

    def read_known(self, id_, props):
        def read() -> dict:
            with session(props["connection"], props["socket"], READ_DIAL_TIMEOUT) as cur:
                return facts(cur, props)

        found = when_readable(props["connection"], read)
        return ReadResult(id_=id_, outs=props if found is None else dict(props, **found))  # None: see HostAccess

    def delete(self, _id, props):
        if props["connection"].get("disposable"):
            return
        with session(props["connection"], props["socket"]) as cur:
            _drop(cur, props["user"], props["hosts"], props["databases"])


class Database(Resource, module="mariadb", name="Database"):
    """Databases, one user and its grants from each host pattern (the seeds' 'localhost' and '%')."""

    grants_present: pulumi.Output[list]

    def __init__(self, name: str, connection: pulumi.Input[dict], socket: str, databases: list[str], user: str,
                 password: pulumi.Input[str], hosts: tuple[str, ...] = ("localhost", "%"),
                 opts: Optional[pulumi.ResourceOptions] = None):
        props = {
            "connection": connection, "socket": socket, "databases": list(databases), "user": user,
            "password": password, "hosts": list(hosts),
            "databases_present": None, "grants_present": None, "passwords_match": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection", "password"]))
        super().__init__(_DatabaseProvider(), name, props, opts)
