"""memcached on the controller, on the management address: Keystone's token cache and the services' auth cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from . import render
from .blocks.steps import configured_service, once_done
from .host import Host
from .profiles import Profile

# The logical package sets (profiles.py) this service needs, by role.
PACKAGES = {"controller": ("memcached",)}


@dataclass(frozen=True)
class MemcachedArgs:
    host: Host
    profile: Profile
    memory_mb: int = 256
    max_connections: int = 4096


class Memcached(pulumi.ComponentResource):
    servers: pulumi.Output[str]  # "controller:11211", for memcache_servers / memcached_servers

    def __init__(self, name: str, args: MemcachedArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Memcached", name, None, opts)
        host, profile = args.host, args.profile
        prefix = f"{name}-{host.spec.name}"
        content = render.render("memcached", "memcached.conf", profile.name, listen_address=host.address,
                                memory_mb=args.memory_mb, max_connections=args.max_connections)
        _, service = configured_service(prefix, host.connection, profile.path("memcached_conf"), content,
                                        profile.service("memcached"), self)
        self.servers = once_done(f"{host.spec.name}:11211", service)
        self.register_outputs({"servers": self.servers})
