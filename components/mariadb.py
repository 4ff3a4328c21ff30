"""MariaDB on the controller: the install guide's server settings, bound to the management address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from . import render
from .blocks.database import DatabaseServer
from .blocks.steps import configured_service, once_done, wait_until
from .host import Host
from .profiles import Profile

# The logical package sets (profiles.py) this service needs, by role.
PACKAGES = {"controller": ("mariadb",)}


@dataclass(frozen=True)
class MariaDBArgs:
    host: Host
    profile: Profile
    max_connections: int = 4096


class MariaDB(pulumi.ComponentResource):
    server: DatabaseServer

    def __init__(self, name: str, args: MariaDBArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:MariaDB", name, None, opts)
        host, profile = args.host, args.profile
        prefix = f"{name}-{host.spec.name}"
        content = render.render("mariadb", "openstack.cnf", profile.name, bind_address=host.address,
                                max_connections=args.max_connections)
        _, service = configured_service(prefix, host.connection, profile.path("mariadb_conf"), content,
                                        profile.service("mariadb"), self,
                                        ready=wait_until("mysqladmin --silent ping", 120, "MariaDB"))
        self.server = DatabaseServer(
            connection=once_done(host.connection, service),
            socket=profile.path("mariadb_socket"),
            address=host.spec.name,
        )
        self.register_outputs({"address": host.spec.name})
