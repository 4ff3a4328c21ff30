"""Glance, the image service, on the controller: its database, its Keystone registration (image, port 9292),
glance-api.conf with a file store, db_sync, and the API service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from . import render
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import http_answers, restarted_on, systemd_service

PORT = 9292
PACKAGES = {"controller": ("glance",)}  # the logical package sets (profiles.py) by role
IMAGES = "/var/lib/glance/images/"


@dataclass(frozen=True)
class GlanceArgs:
    ctx: ServiceContext
    db_password: pulumi.Input[str]
    password: pulumi.Input[str]  # the glance service user's
    workers: int = 2


class Glance(ServiceComponent):
    url: str  # internal, for the services that fetch images (Nova)
    ready: pulumi.Resource

    def __init__(self, name: str, args: GlanceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Glance", name, args.ctx, opts)
        host, profile = self.host, self.profile
        urls = self.database(["glance"], "glance", args.db_password)
        identity = self.register("image", "OpenStack Image", PORT, "", "glance", args.password)
        overrides = self.ctx.service_overrides("glance", host)
        conf_text = pulumi.Output.all(urls["glance"], self.ctx.auth("glance", args.password)).apply(
            lambda v: render.merge_ini(
                render.render("glance", "glance-api.conf", profile.name, bind_address=host.address, workers=args.workers,
                              database_url=v[0], auth=v[1], images_dir=IMAGES),
                overrides,
            )
        )
        conf = self.secret_config("/etc/glance/glance-api.conf", conf_text, group="glance")
        db_sync = self.run_as("db-sync", "glance", "glance-manage db_sync", after=[conf])
        self.ready = systemd_service(
            f"{self.prefix}-api", host.connection, profile.service("glance_api"), triggers=restarted_on(conf),
            ready=http_answers(host.address, PORT, "Glance"),
            opts=self.after(db_sync, *identity.entities),
        )
        self.url = self.ctx.urls(PORT)["internal"]
        self.register_outputs({})
