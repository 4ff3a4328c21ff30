"""Glance, the image service, on the controller: its database, its Keystone registration (image, port 9292),
glance-api.conf with a file store, db_sync, and the API service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from . import render
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import as_user, http_answers, restarted_on, systemd_service
from .providers.remote import RemoteCommand

PORT = 9292
PACKAGES = {"controller": ("glance",)}  # the logical package sets (profiles.py) by role
IMAGES = "/var/lib/glance/images/"
METADEFS = "/etc/glance/metadefs"  # the package's metadata definitions (JSON)


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
        # The metadata definitions catalog (the dashboard's image and flavor metadata editors read it), from the
        # package's files: loaded once; a refresh finds fewer namespaces than files after an upgrade brought more,
        # and the next up loads the new ones (existing namespaces are skipped).
        namespaces = "mariadb -N -B -e 'SELECT COUNT(*) FROM glance.metadef_namespaces'"
        files = f"ls {METADEFS}/*.json | wc -l"
        RemoteCommand(f"{self.prefix}-metadefs", connection=host.connection,
                      create=as_user("glance", f"glance-manage db_load_metadefs {METADEFS}"),
                      check=f'test "$({namespaces})" -ge "$({files})"', opts=self.after(db_sync))
        self.url = self.ctx.urls(PORT)["internal"]
        self.register_outputs({})
