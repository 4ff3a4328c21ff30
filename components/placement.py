"""Placement on the controller: its database, its Keystone registration (placement, port 8778),
placement.conf, db sync, served by Apache mod_wsgi as the seeds do (with their `Require all granted` fix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.apache import WsgiApp, serve_with_apache
from .blocks.service import ServiceComponent, ServiceContext

PORT = 8778
PACKAGES = {"controller": ("placement",)}  # the logical package sets (profiles.py) by role


@dataclass(frozen=True)
class PlacementArgs:
    ctx: ServiceContext
    db_password: pulumi.Input[str]
    password: pulumi.Input[str]  # the placement service user's (Nova authenticates to Placement with it too)
    web_server: Sequence[pulumi.Resource]  # the web server's owner is ready (Keystone): this site only reloads it
    processes: int = 2


class Placement(ServiceComponent):
    ready: list[pulumi.Resource]  # the API answers and its Keystone registration is made (no sign-in left to make)
    web_server: pulumi.Resource  # the reload of the web server Keystone runs in: later sign-ins wait for it

    def __init__(self, name: str, args: PlacementArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Placement", name, args.ctx, opts)
        profile = self.profile
        urls = self.database(["placement"], "placement", args.db_password)
        overrides = self.ctx.service_overrides("placement", self.host)
        conf_text = pulumi.Output.all(urls["placement"], self.ctx.auth("placement", args.password)).apply(
            lambda v: render.merge_ini(
                render.render("placement", "placement.conf", profile.name, database_url=v[0], auth=v[1]), overrides
            )
        )
        conf = self.secret_config("/etc/placement/placement.conf", conf_text, group="placement")
        db_sync = self.run_as("db-sync", "placement", "placement-manage db sync", after=[conf])
        app = WsgiApp(site="placement-api", title="Placement", port=PORT, script="placement-api", user="placement",
                      process_group="placement-api", log_name="placement-api", standalone="placement_standalone",
                      processes=args.processes)
        # The reload restarts Keystone's WSGI daemons too: this registration (like every later one, cloud.py) is
        # made after it, never while it runs.
        served = serve_with_apache(self.prefix, self.host, profile, app, reads=[conf],
                                   after=[db_sync, *args.web_server], parent=self, restart=False)
        self.web_server = served.server
        identity = self.register("placement", "Placement API", PORT, "", "placement", args.password,
                                 after=[self.web_server])
        self.ready = [served.ready, *identity.entities]
        self.register_outputs({})
