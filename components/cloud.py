"""The assembly: builds the cloud's components from the typed config, in install order."""

from __future__ import annotations

from typing import Optional

import pulumi

from .config import CloudConfig
from .host import Host, HostArgs, ssh_connection
from .lab import Lab, LabArgs, cache_root, host_apt_sources
from .passwords import Passwords


class Cloud(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: CloudConfig, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:index:Cloud", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.passwords = Passwords(f"{name}-passwords", cfg.passwords, opts=child)

        if cfg.lab is not None:  # the hosts are this machine's own nodes, made by the stack
            self.lab: Optional[Lab] = Lab(
                "lab",
                LabArgs(cfg=cfg, stack=pulumi.get_stack(), cache_root=cache_root(), apt_sources=host_apt_sources()),
                opts=child,
            )
            connections = self.lab.connections
        else:
            self.lab = None
            assert cfg.ssh.private_key is not None  # config.parse requires it without a lab
            key = cfg.ssh.private_key.output()
            connections = {h.name: ssh_connection(h, cfg.ssh, key) for h in cfg.hosts}

        self.hosts = {
            h.name: Host(f"{name}-{h.name}", HostArgs(spec=h, connection=connections[h.name]), opts=child)
            for h in cfg.hosts
        }
        # Exported on every stack: each host's management address and roles.
        self.hosts_summary = {h.name: {"address": h.address, "roles": list(h.roles)} for h in cfg.hosts}
        self.register_outputs({"hosts": self.hosts_summary})
