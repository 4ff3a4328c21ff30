"""The assembly: builds the cloud's components from the typed config, in install order."""

from __future__ import annotations

from typing import Optional

import pulumi

from .config import CloudConfig
from .host import Host, HostArgs
from .passwords import Passwords
from .providers.generated import GeneratedSshKey


class Cloud(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: CloudConfig, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:index:Cloud", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.passwords = Passwords(f"{name}-passwords", cfg.passwords, opts=child)

        if cfg.ssh.private_key is not None:
            private_key: pulumi.Input[str] = cfg.ssh.private_key.output()
        else:  # a lab stack: its nodes trust a key pair made for the stack
            private_key = GeneratedSshKey(f"{name}-lab-ssh-key", comment=f"{pulumi.get_stack()}-lab", opts=child).private_key

        self.hosts = {
            h.name: Host(f"{name}-{h.name}", HostArgs(spec=h, ssh=cfg.ssh, private_key=private_key), opts=child)
            for h in cfg.hosts
        }
        # Exported on every stack: each host's management address and roles.
        self.hosts_summary = {h.name: {"address": h.address, "roles": list(h.roles)} for h in cfg.hosts}
        self.register_outputs({"hosts": self.hosts_summary})
