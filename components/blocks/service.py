"""What every OpenStack API service takes from the cloud beneath it, and the steps they all share: its
database, its Keystone registration, its config rendered with the credentials it authenticates with, and a
one-off command run as its user (a db sync). A service component is these plus a few lines of its own data."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi

from .. import render
from ..host import Host
from ..profiles import Profile
from ..providers.remote import RemoteCommand, RemoteFile
from .database import DatabaseServer, service_database
from .registration import AdminCli, Identity, KeystoneRegistration, RegistrationArgs
from .steps import as_user, config_file, http_answers, restarted_on, systemd_service


@dataclass(frozen=True)
class ServiceContext:
    """The cloud as a service sees it (the same for every service; built once by the assembly)."""

    host: Host  # the controller that runs the service's API and one-off steps
    profile: Profile
    region: str
    identity: Identity  # Keystone's provider, service project and roles
    database: DatabaseServer
    auth_url: str  # Keystone's internal URL, which services authenticate against
    public_auth_url: str  # the one clients are sent to (www_authenticate_uri)
    memcache_servers: pulumi.Input[str]
    public_host: str  # where clients outside the cloud reach the APIs (a VIP or the controller's address)
    # A secret text with the stack's passwords masked (Passwords.masked): what a preview's report may show of it.
    mask: Callable[[pulumi.Input[str]], pulumi.Output[str]]
    admin_cli: AdminCli  # the admin's CLI on the controller (Keystone's)
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)  # stack-wide

    def records_of(self, name: str, host: Host, what: str, ids: str, delete: str,
                   parent: pulumi.Resource, after: Sequence[pulumi.Resource] = ()) -> RemoteCommand:
        """`host`'s records in the cloud (`ids`: the admin CLI's arguments that list their IDs; `delete`: the one that
        deletes one by ID): nothing to make, but when the host leaves the stack they are deleted from the cloud, on
        the controller, after the host's own services have stopped (those depend on this step, so they go first).
        Without this the cloud keeps a compute service or an agent that is down forever."""
        cli = self.admin_cli.command
        listed = f"{cli} {ids.format(host=shlex.quote(host.spec.name))} -f value -c ID"
        remove = (f"for id in $({listed}); do {cli} {delete} \"$id\"; done; "
                  f"test -z \"$({listed})\" || "
                  f"{{ echo {shlex.quote(f'{what} of {host.spec.name} still in the cloud')} >&2; exit 1; }}")
        return RemoteCommand(name, connection=self.host.connection, create="true", delete=remove,
                             opts=pulumi.ResourceOptions(parent=parent, depends_on=[self.admin_cli.ready, *after]))

    def urls(self, port: int, path: str = "") -> dict[str, str]:
        """The endpoint URL per interface: public on the public host, internal/admin on the controller's name."""
        internal = f"http://{self.host.spec.name}:{port}{path}"
        return {"public": f"http://{self.public_host}:{port}{path}", "internal": internal, "admin": internal}

    def service_overrides(self, service: str, host: Host) -> dict[str, dict[str, Any]]:
        """The stack-wide overrides of `service`, then `host`'s own on top."""
        return render.service_overrides(self.overrides, host.spec.overrides, service)

    def auth(self, username: str, password: pulumi.Input[str]) -> pulumi.Output[dict]:
        """The values of the templates' keystone_authtoken and service credential sections (secret)."""
        return pulumi.Output.secret(pulumi.Output.all(password, self.memcache_servers).apply(lambda v: {
            "auth_url": self.auth_url, "public_auth_url": self.public_auth_url, "memcached_servers": v[1],
            "username": username, "password": v[0],
        }))


class ServiceComponent(pulumi.ComponentResource):
    """The frame every API service on the controller shares: its steps are named `{name}-{host}-{step}`,
    its database `{name}-database`, its Keystone registration `{name}-identity-*`."""

    def __init__(self, type_: str, name: str, ctx: ServiceContext, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_, name, None, opts)
        self.ctx, self.host, self.profile = ctx, ctx.host, ctx.profile
        self.service_name = name
        self.prefix = f"{name}-{ctx.host.spec.name}"

    def after(self, *deps: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

    def database(self, databases: Sequence[str], user: str, password: pulumi.Input[str]) -> dict[str, pulumi.Output[str]]:
        """The service's databases and user; each database's SQLAlchemy URL (secret)."""
        _, urls = service_database(f"{self.service_name}-database", self.ctx.database, databases, user, password,
                                   opts=self.after())
        return urls

    def register(self, service_type: str, description: str, port: int, path: str, user: str,
                 password: pulumi.Input[str], after: Sequence[pulumi.Resource] = ()) -> KeystoneRegistration:
        """The service user (admin on `service`), the service entity and its three endpoints (made once Keystone
        is ready, and `after`)."""
        ctx = self.ctx
        return KeystoneRegistration(
            f"{self.service_name}-identity",
            RegistrationArgs(identity=ctx.identity.after(*after), region=ctx.region, service=self.service_name, service_type=service_type,
                             description=description, urls=ctx.urls(port, path), user=user, password=password),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def secret_config(self, path: str, text: pulumi.Input[str], group: str, step: str = "config") -> RemoteFile:
        """A config file holding credentials: secret, 0640, readable by the service's group only."""
        return config_file(f"{self.prefix}-{step}", self.host.connection, path, pulumi.Output.secret(text),
                           mode="0640", group=group, opts=self.after(), shown=self.ctx.mask(text))

    def run_as(self, step: str, user: str, command: str, check: Optional[str] = None,
               after: Sequence[pulumi.Resource] = ()) -> RemoteCommand:
        """A one-off step (a db sync, a cell mapping) as the service's user; `check` tells on refresh that it holds,
        as root (it only reads, and may read the database directly: a query answers in milliseconds where the
        service's manage command starts in seconds)."""
        return RemoteCommand(f"{self.prefix}-{step}", connection=self.host.connection, create=as_user(user, command),
                             check=check, opts=self.after(*after))

    def uwsgi_api(self, step: str, service: str, wsgi: str, port: int, what: str, user: str,
                  reads: Sequence[RemoteFile], workers: int, after: Sequence[pulumi.Resource]) -> RemoteCommand:
        """One of Debian's uwsgi units for an API (`{prefix}-{step}-uwsgi`, `{prefix}-{step}-uwsgi-args`, then
        `{prefix}-{step}`): its ini with this host's worker count and the management address as its only socket,
        (re)started on writes of the files it `reads` and of the ini, ready when the port answers."""
        profile, host = self.profile, self.host
        unit, ini_path = profile.service(service), profile.path(f"{service}_uwsgi")
        defaults_path = profile.path(f"{service}_defaults")
        text = render.render("uwsgi", "api.ini", profile.name, workers=workers, name=unit, user=user,
                             wsgi_file=f"{profile.path('wsgi_scripts')}/{wsgi}", bind_address=host.address, port=port,
                             defaults_path=defaults_path)
        ini = config_file(f"{self.prefix}-{step}-uwsgi", host.connection, ini_path, text, opts=self.after())
        # The init script's own arguments would add a socket on every address: the ini's socket only.
        arguments = config_file(
            f"{self.prefix}-{step}-uwsgi-args", host.connection, defaults_path,
            render.render("uwsgi", "api.default", profile.name, init_script=unit, ini_path=ini_path),
            opts=self.after())
        return systemd_service(
            f"{self.prefix}-{step}", host.connection, unit,
            triggers=restarted_on(*reads, ini, arguments),
            ready=http_answers(host.address, port, what),
            opts=self.after(ini, arguments, *after),
        )
