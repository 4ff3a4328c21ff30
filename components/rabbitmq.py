"""RabbitMQ on the controller: the `openstack` user with full permissions on `/`, no `guest`, AMQP on the
management address. Compute nodes reach the controller only through it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import pulumi

from . import render
from .blocks.steps import config_file, once_done, restarted_on, systemd_service, wait_until
from .host import Host
from .profiles import Profile
from .providers.remote import RemoteCommand

# The logical package sets (profiles.py) this service needs, by role.
PACKAGES = {"controller": ("rabbitmq",)}

USER = "openstack"
# Whether RabbitMQ has the users and permissions of the definitions on stdin, password hashes included.
_HAS_DEFINITIONS = """import json, subprocess, sys
want = json.load(sys.stdin)
have = json.loads(subprocess.run(["rabbitmqctl", "-q", "export_definitions", "-", "--format", "json"],
                                 capture_output=True, check=True, stdin=subprocess.DEVNULL).stdout)
users = {u["name"]: u.get("password_hash") for u in have.get("users", [])}
perms = [{k: p.get(k) for k in ("user", "vhost", "configure", "write", "read")} for p in have.get("permissions", [])]
sys.exit(not (all(users.get(u["name"]) == u["password_hash"] for u in want["users"])
              and all(p in perms for p in want["permissions"])))
"""


def password_hash(password: str, salt: bytes) -> str:
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(password: str) -> str:
    """The `openstack` user with full permissions on `/`, as RabbitMQ definitions. Its password is hashed as RabbitMQ
    hashes it (rabbit_password_hashing_sha256: base64 of a 4-byte salt and SHA-256 of the salt and the password),
    with a salt derived from the password, so that the same password gives the same definitions on every run."""
    salt = hmac.new(password.encode(), b"openstack-deploy rabbitmq salt", hashlib.sha256).digest()[:4]
    return json.dumps({
        "users": [{"name": USER, "password_hash": password_hash(password, salt),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}],
        "permissions": [{"user": USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
    })


@dataclass(frozen=True)
class RabbitMQArgs:
    host: Host
    profile: Profile
    password: pulumi.Input[str]


class RabbitMQ(pulumi.ComponentResource):
    transport_url: pulumi.Output[str]  # secret: rabbit://openstack:...@controller:5672/

    def __init__(self, name: str, args: RabbitMQArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:RabbitMQ", name, None, opts)
        host, profile = args.host, args.profile
        prefix = f"{name}-{host.spec.name}"
        conn, child = host.connection, pulumi.ResourceOptions(parent=self)
        env = config_file(f"{prefix}-config", conn, profile.path("rabbitmq_env"),
                          render.render("rabbitmq", "rabbitmq-env.conf", profile.name, listen_address=host.address),
                          opts=child)
        # Erlang's port mapper is socket-activated by systemd: its socket moves to the management address (and
        # loopback, where Erlang nodes register) before RabbitMQ starts and registers with it.
        epmd_file = config_file(f"{prefix}-epmd-socket", conn, profile.path("epmd_socket_dropin"),
                                render.render("rabbitmq", "epmd-socket.conf", profile.name, listen_address=host.address),
                                opts=child)
        sockets = f"{profile.service('epmd')} {profile.service('epmd_socket')}"
        rebind = f"systemctl daemon-reload && systemctl stop {sockets} && systemctl start {profile.service('epmd_socket')}"
        epmd = RemoteCommand(
            f"{prefix}-epmd", connection=conn, create=rebind, update=rebind,
            delete=f"systemctl daemon-reload && systemctl stop {sockets} || true",
            triggers=restarted_on(epmd_file),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[epmd_file]))
        service = systemd_service(
            f"{prefix}-service", conn, profile.service("rabbitmq"), triggers=restarted_on(env, epmd_file),
            ready=wait_until("rabbitmqctl -q await_startup >/dev/null 2>&1", 180, "RabbitMQ"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[env, epmd]))
        after_service = pulumi.ResourceOptions(parent=self, depends_on=[service])
        # The user comes as RabbitMQ definitions on stdin, its password as RabbitMQ's own salted hash, imported from a
        # file only RabbitMQ and root read: never in a command line, and never read by rabbitmqctl from stdin
        # (RabbitMQ 4.0's add_user and change_password wait forever for it there).
        load = (f"f=$(mktemp) && trap 'rm -f \"$f\"' EXIT && install -m 0600 -o rabbitmq -g rabbitmq /dev/stdin \"$f\" "
                "&& rabbitmqctl -q import_definitions \"$f\" >/dev/null")
        user = RemoteCommand(
            f"{prefix}-user",
            connection=host.connection,
            create=load,
            update=load,
            delete=f"rabbitmqctl -q delete_user {USER} || true",
            check=f"python3 -c {shlex.quote(_HAS_DEFINITIONS)}",
            stdin=pulumi.Output.secret(pulumi.Output.from_input(args.password).apply(definitions)),
            opts=after_service,
        )
        no_guest = RemoteCommand(
            f"{prefix}-no-guest",
            connection=host.connection,
            create="rabbitmqctl -q delete_user guest 2>/dev/null || true",
            check="! rabbitmqctl -q list_users | cut -f1 | grep -qx guest",
            opts=after_service,  # no undo: the default account is not put back
        )
        self.transport_url = pulumi.Output.secret(
            once_done(args.password, user, no_guest).apply(
                lambda password: f"rabbit://{USER}:{quote(password, safe='')}@{host.spec.name}:5672/"
            )
        )
        self.register_outputs({})
