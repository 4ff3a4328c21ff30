"""An OpenStack API served by Apache mod_wsgi, as the seeds serve Keystone and Placement: the packaged
standalone (uwsgi) unit masked, the site written and enabled, then Apache (re)started or reloaded on the
writes of the files the API reads, with an HTTP probe as readiness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from .. import render
from ..host import Host
from ..profiles import Profile
from ..providers.remote import RemoteCommand, RemoteFile
from .steps import config_file, masked_service, restarted_on, systemd_service, wait_until


@dataclass(frozen=True)
class WsgiApp:
    site: str  # the site's name, e.g. "keystone"
    title: str  # for the site file's header
    port: int
    script: str  # the WSGI script in the profile's wsgi_scripts folder
    user: str  # the daemon processes run as this user and group
    process_group: str
    log_name: str
    standalone: str  # logical service name of the packaged unit serving the same API (masked)
    processes: int = 2
    limit_request_body: Optional[int] = None


def site_text(app: WsgiApp, host: Host, profile: Profile) -> str:
    return render.render(
        "apache", "wsgi-site.conf", profile.name, title=app.title, bind_address=host.address, port=app.port,
        process_group=app.process_group, processes=app.processes, user=app.user, script=app.script,
        wsgi_scripts=profile.path("wsgi_scripts"), log_dir=profile.path("web_log_dir"), log_name=app.log_name,
        limit_request_body=app.limit_request_body,
    )


def serve_with_apache(prefix: str, host: Host, profile: Profile, app: WsgiApp, reads: Sequence[RemoteFile],
                      after: Sequence[pulumi.Resource], parent: pulumi.Resource, restart: bool = True,
                      extra_files: Sequence[RemoteFile] = ()) -> RemoteCommand:
    """`{prefix}-no-uwsgi`, `{prefix}-apache-site`, `{prefix}-apache-enable`, `{prefix}-apache`.

    `reads`: the files the API reads (their writes restart it). `restart`: the first site on
    the web server restarts it (and owns its unit); later ones only reload it, which restarts the WSGI daemons
    without stopping the other sites. `extra_files`: other web server files written before enabling
    (Keystone's ServerName)."""
    conn = host.connection

    def opts(*deps) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, depends_on=list(deps))

    no_standalone = masked_service(f"{prefix}-no-uwsgi", conn, profile.service(app.standalone), opts=opts(*after))
    text = site_text(app, host, profile)
    site = config_file(f"{prefix}-apache-site", conn, profile.path("web_site", site=app.site), text, opts=opts(*after))
    enabled = RemoteCommand(
        f"{prefix}-apache-enable", connection=conn,
        create=profile.enable_site.format(site=app.site),
        delete=profile.disable_site.format(site=app.site) or None,
        check=profile.site_enabled.format(site=app.site) or None,
        opts=opts(site, no_standalone, *extra_files),
    )
    probe = f"curl -sf -o /dev/null http://{host.address}:{app.port}/"
    return systemd_service(
        f"{prefix}-apache", conn, profile.service("web_server"),
        triggers=restarted_on(site, *extra_files, *reads),
        ready=wait_until(probe, 120, f"{app.title} (HTTP answer on port {app.port})"),
        reload=not restart,
        opts=opts(enabled),
    )
