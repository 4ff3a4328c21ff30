"""One managed host: its name, management address, roles and the SSH connection every remote step uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .config import HostSpec, SshSpec


@dataclass(frozen=True)
class HostArgs:
    spec: HostSpec
    ssh: SshSpec
    private_key: pulumi.Input[str]  # a secret: from the stack config, or the lab's generated key


class Host(pulumi.ComponentResource):
    """Carries a host's connection; remote steps on the host are parented to it and named `{name}-{host}-{step}`."""

    connection: pulumi.Output[dict]

    def __init__(self, name: str, args: HostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Host", name, None, opts)
        self.spec = args.spec
        self.address = args.spec.address
        # A plain dict, as the dynamic providers take it (components/providers/ssh.py); secret as a whole
        # because it holds the private key.
        self.connection = pulumi.Output.secret(
            pulumi.Output.from_input(args.private_key).apply(
                lambda key: {
                    "host": args.spec.address,
                    "port": args.ssh.port,
                    "user": args.ssh.user,
                    "private_key": key,
                    "dial_timeout": args.ssh.dial_timeout,
                }
            )
        )
        self.register_outputs({"address": self.address, "roles": list(args.spec.roles)})
