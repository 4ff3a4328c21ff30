"""RabbitMQ on the controller: the `openstack` user with full permissions on `/`, no `guest`, AMQP on the
management address. Compute nodes reach the controller only through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import pulumi

from . import render
from .blocks.steps import config_file, once_done, restarted_on, systemd_service, wait_until
from .host import Host
from .profiles import Profile
from .providers.remote import RemoteCommand

USER = "openstack"


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
        # The password travels on stdin, read once into the shell (printf is a builtin: never in argv).
        user_exists = f"rabbitmqctl -q list_users </dev/null | cut -f1 | grep -qx {USER}"
        set_user = (
            'IFS= read -r pw || true; '
            f'if {user_exists}; then printf %s "$pw" | rabbitmqctl -q change_password {USER}; '
            f'else printf %s "$pw" | rabbitmqctl -q add_user {USER}; fi '
            f"&& rabbitmqctl -q set_permissions -p / {USER} '.*' '.*' '.*'"
        )
        user = RemoteCommand(
            f"{prefix}-user",
            connection=host.connection,
            create=set_user,
            update=set_user,
            delete=f"rabbitmqctl -q delete_user {USER} || true",
            check=(f"rabbitmqctl -q authenticate_user {USER} >/dev/null && rabbitmqctl -q list_user_permissions {USER} "
                   "| grep -q '^/\t\\.\\*\t\\.\\*\t\\.\\*$'"),
            stdin=args.password,
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
