"""Horizon, the dashboard, on the controller's Apache: Debian's openstack-dashboard (without its -apache site,
which would put the dashboard on every virtual host), its settings written by this program, the static assets
collected and compressed again exactly when the settings change, and a site of its own on port 80 of the
management address, in its own WSGI daemon group. A change of the settings restarts only the dashboard's daemons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.apache import WsgiApp, serve_with_apache
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import config_file, restarted_on
from .providers.remote import RemoteCommand

PORT = 80
PACKAGES = {"controller": ("dashboard",)}  # the logical package sets (profiles.py) by role
WEBROOT = "/"
DEFAULT_ROLE = "user"  # the seeds' OPENSTACK_KEYSTONE_DEFAULT_ROLE: the role Keystone's set-up made (keystone.py)


@dataclass(frozen=True)
class HorizonArgs:
    ctx: ServiceContext
    secret_key: pulumi.Input[str]  # Django's: signs sessions; the same on every controller
    web_server: Sequence[pulumi.Resource]  # the web server's owner is ready: this site only reloads it
    processes: int = 2
    time_zone: str = "UTC"


class Horizon(ServiceComponent):
    url: str  # where a browser reaches the dashboard
    web_server: pulumi.Resource  # the reload of the web server Keystone runs in: later sign-ins wait for it
    ready: pulumi.Resource  # the login page answers

    def __init__(self, name: str, args: HorizonArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Horizon", name, args.ctx, opts)
        ctx, host, profile = self.ctx, self.host, self.profile
        overrides = ctx.service_overrides("horizon", host).get("local_settings", {})
        names = sorted({ctx.public_host, host.address, host.spec.name})
        static_dir = profile.path("dashboard_static")
        settings_text = pulumi.Output.all(args.secret_key, ctx.memcache_servers).apply(
            lambda v: render.render(
                "horizon", "openstack_deploy.py", profile.name, secret_key=v[0], memcached_servers=v[1].split(","),
                allowed_hosts=names, webroot=WEBROOT, static_root=static_dir + "/",
                time_zone=args.time_zone, keystone_url=ctx.auth_url, default_role=DEFAULT_ROLE, region=ctx.region,
                overrides=overrides,
            )
        )
        stub = config_file(f"{self.prefix}-local-settings", host.connection, profile.path("dashboard_local_settings"),
                           render.render("horizon", "local_settings.py", profile.name), opts=self.after())
        settings = self.secret_config(profile.path("dashboard_settings"), settings_text, group="horizon",
                                      step="settings")
        # As the package's postinst does it, with this program's settings: the pages' assets, compressed offline
        # (compress's manifest lands in Horizon's COMPRESS_OUTPUT_DIR, `dashboard`).
        manage = profile.path("dashboard_manage")
        build = f"{manage} collectstatic --noinput --clear -v 0 && {manage} compress --force -v 0"
        static = RemoteCommand(
            f"{self.prefix}-static", connection=host.connection, create=build, update=build,
            check=f"test -s {static_dir}/dashboard/manifest.json", triggers=restarted_on(stub, settings),
            opts=self.after(stub, settings),
        )
        app = WsgiApp(site="openstack-dashboard", title="Horizon", port=PORT, script="wsgi.py", user="horizon",
                      process_group="horizon", log_name="horizon", standalone=None, processes=args.processes,
                      script_dir="dashboard_wsgi_dir", static=(f"{WEBROOT}static", "dashboard_static"),
                      probe_path=f"{WEBROOT}auth/login/")
        served = serve_with_apache(self.prefix, host, profile, app, reads=[stub, settings],
                                   after=[static, *args.web_server], parent=self, restart=False)
        self.web_server, self.ready = served
        self.url = f"http://{ctx.public_host}{WEBROOT}"
        self.register_outputs({"url": self.url})
