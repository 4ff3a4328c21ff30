"""One managed host: its name, management address, roles and the SSH connection every remote step uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .config import HostSpec, SshSpec


def ssh_connection(spec: HostSpec, ssh: SshSpec, private_key: pulumi.Input[str]) -> pulumi.Output[dict]:
    """The connection to a configured host, as the dynamic providers take it (components/providers/ssh.py).
    Secret as a whole, because it holds the private key."""
    return pulumi.Output.secret(
        pulumi.Output.from_input(private_key).apply(
            lambda key: {
                "host": spec.address,
                "port": ssh.port,
                "user": ssh.user,
                "private_key": key,
                "dial_timeout": ssh.dial_timeout,
            }
        )
    )


@dataclass(frozen=True)
class HostArgs:
    spec: HostSpec
    # From the stack config (ssh_connection) or from a lab node, whose boot it then waits for.
    connection: pulumi.Input[dict]


class Host(pulumi.ComponentResource):
    """Carries a host's connection; remote steps on the host are parented to it and named `{name}-{host}-{step}`."""

    connection: pulumi.Output[dict]

    def __init__(self, name: str, args: HostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Host", name, None, opts)
        self.spec = args.spec
        self.address = args.spec.address
        self.connection = pulumi.Output.secret(args.connection)
        self.register_outputs({"address": self.address, "roles": list(args.spec.roles)})
