"""An OpenStack web application served by Apache mod_wsgi, as the seeds serve Keystone, Placement and the
dashboard: the packaged standalone (uwsgi) unit masked where there is one, the site written and enabled, then
Apache (re)started, or reloaded for a later site, with an HTTP probe as readiness. A later site's own WSGI daemons
are restarted on the writes of the files it reads, and only they: the other sites keep serving."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

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
    script: str  # the WSGI script's file name in `script_dir`
    user: str  # the daemon processes run as this user and group
    process_group: str
    log_name: str
    standalone: Optional[str]  # logical service name of the packaged unit serving the same API (masked), if any
    processes: int = 2
    limit_request_body: Optional[int] = None
    script_dir: str = "wsgi_scripts"  # the profile's logical path of the folder holding the script
    static: Optional[tuple[str, str]] = None  # (URL path, the profile's logical path of the folder) served as files
    probe_path: str = "/"  # answers 2xx/3xx once the application serves

    def probe(self, host: Host) -> str:
        return f"curl -sf -o /dev/null http://{host.address}:{self.port}{self.probe_path}"


def site_text(app: WsgiApp, host: Host, profile: Profile) -> str:
    return render.render(
        "apache", "wsgi-site.conf", profile.name, title=app.title, bind_address=host.address, port=app.port,
        process_group=app.process_group, processes=app.processes, user=app.user, script=app.script,
        script_dir=profile.path(app.script_dir), log_dir=profile.path("web_log_dir"), log_name=app.log_name,
        limit_request_body=app.limit_request_body, static_url=app.static[0] if app.static else "",
        static_dir=profile.path(app.static[1]) if app.static else "",
    )


APACHE_ARGV0_LENGTH = 17


class Served(NamedTuple):
    server: RemoteCommand  # the web server's start (the first site) or reload (a later one)
    ready: RemoteCommand  # after it the site serves what its files say


def serve_with_apache(prefix: str, host: Host, profile: Profile, app: WsgiApp, reads: Sequence[RemoteFile],
                      after: Sequence[pulumi.Resource], parent: pulumi.Resource, restart: bool = True,
                      extra_files: Sequence[RemoteFile] = ()) -> Served:
    """`{prefix}-no-uwsgi` (if the app has a standalone unit), `{prefix}-apache-site`, `{prefix}-apache-enable`,
    `{prefix}-apache`, and for a later site `{prefix}-wsgi-daemons`.

    `reads`: the files the application reads. `restart`: the first site on the web server restarts it (and owns
    its unit) on writes of its site, `extra_files` and `reads`. A later site only reloads it, on writes of its site
    file (a reload restarts every site's WSGI daemons without stopping the server: callers order Keystone sign-ins
    around it), and on writes of its `reads` restarts its own daemons only. `extra_files`: other web server files
    written before enabling (Keystone's ServerName)."""
    conn = host.connection

    def opts(*deps) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, depends_on=list(deps))

    no_standalone = (masked_service(f"{prefix}-no-uwsgi", conn, profile.service(app.standalone), opts=opts(*after))
                     if app.standalone else None)
    text = site_text(app, host, profile)
    site = config_file(f"{prefix}-apache-site", conn, profile.path("web_site", site=app.site), text, opts=opts(*after))
    enabled = RemoteCommand(
        f"{prefix}-apache-enable", connection=conn,
        create=profile.enable_site.format(site=app.site),
        delete=profile.disable_site.format(site=app.site) or None,
        check=profile.site_enabled.format(site=app.site) or None,
        opts=opts(site, *([no_standalone] if no_standalone else []), *extra_files),
    )
    ready = wait_until(app.probe(host), 120, f"{app.title} (HTTP answer on port {app.port})")
    server = systemd_service(
        f"{prefix}-apache", conn, profile.service("web_server"),
        triggers=restarted_on(site, *extra_files, *(reads if restart else ())), ready=ready, reload=not restart,
        opts=opts(enabled),
    )
    if restart:
        return Served(server, server)
    return Served(server, wsgi_daemons_restarted(f"{prefix}-wsgi-daemons", conn, app, ready,
                                                 triggers=restarted_on(*reads), opts=opts(server)))


def wsgi_daemons_restarted(name: str, connection: pulumi.Input[dict], app: WsgiApp, ready: str,
                           triggers: Sequence[pulumi.Input[int]], opts: pulumi.ResourceOptions) -> RemoteCommand:
    """On a change of `triggers` (not on the first run: the reload before it started them), the site's own WSGI
    daemon processes are stopped; mod_wsgi starts them again at once, and they read their files anew. Requests in
    flight finish first (mod_wsgi's shutdown timeout); the other sites' daemons are not touched."""
    # mod_wsgi names each daemon process "(wsgi:GROUP)" (display-name=%{GROUP}), cut to the length of the command
    # Apache was started with ("/usr/sbin/apache2": 17 characters).
    title = f"(wsgi:{app.process_group})"[:APACHE_ARGV0_LENGTH]
    pattern = shlex.quote("^" + title.replace("(", "[(]").replace(")", "[)]"))
    gone = wait_until('! ps -p "$pids" >/dev/null', 60, f"{app.title}'s old WSGI daemons (stopped)")
    restart = (f"pids=$(pgrep -d, -f {pattern}); "
               f"if [ -n \"$pids\" ]; then kill -TERM $(echo $pids | tr , ' '); {gone}; fi; {ready}")
    return RemoteCommand(name, connection=connection, create=ready, update=restart, triggers=list(triggers),
                         opts=opts)
