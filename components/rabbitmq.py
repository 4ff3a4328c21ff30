"""RabbitMQ on the controller: the `openstack` user with full permissions on `/`, no `guest`, AMQP on the
management address. Compute nodes reach the controller only through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import pulumi

from . import render
from .blocks.steps import configured_service, wait_until
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
        content = render.render("rabbitmq", "rabbitmq-env.conf", profile.name, listen_address=host.address)
        _, service = configured_service(prefix, host.connection, profile.path("rabbitmq_env"), content,
                                        profile.service("rabbitmq"), self,
                                        ready=wait_until("rabbitmqctl -q await_startup >/dev/null 2>&1", 180, "RabbitMQ"))
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
            pulumi.Output.all(args.password, user.id, no_guest.id).apply(
                lambda v: f"rabbit://{USER}:{quote(v[0], safe='')}@{host.spec.name}:5672/"
            )
        )
        self.register_outputs({})
