"""Keystone on the controller, the seeds' way: its database, keystone.conf, db_sync, fernet and credential
keys, bootstrap of the admin and the identity endpoints, served by Apache mod_wsgi. Then the explicit
`openstack` provider (the admin, for every OpenStack-side resource), the `service` project and
the `user` role.

Outputs: the auth URL, the identity layer (provider, service project, role IDs) that registrations and later
OpenStack-side resources take, an admin-openrc and a clouds.yaml (secret).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi
import pulumi_openstack as openstack

from . import render
from .blocks.apache import WsgiApp, serve_with_apache
from .blocks.database import DatabaseServer, service_database
from .blocks.registration import DOMAIN, AdminCli, Identity, entity_options
from .blocks.steps import as_user, config_file
from .host import Host
from .profiles import Profile
from .providers.remote import RemoteCommand

# The logical package sets (profiles.py) this service needs, by role: Keystone brings the web server.
PACKAGES = {"controller": ("web_server", "keystone")}


ADMIN_OPENRC = "/root/admin-openrc"

# Keystone's bootstrap makes the admin role global (no domain: '<<null>>' in its table).
ADMIN_ROLE_QUERY = "SELECT id FROM keystone.role WHERE name = 'admin' AND domain_id = '<<null>>'"


@dataclass(frozen=True)
class KeystoneArgs:
    host: Host
    profile: Profile
    region: str
    database: DatabaseServer
    db_password: pulumi.Input[str]
    admin_password: pulumi.Input[str]
    memcache_servers: pulumi.Input[str]
    # The address clients outside the cloud's /etc/hosts reach the API on (a VIP, or the controller's address).
    public_host: str
    # A secret text with the stack's passwords masked (Passwords.masked): what a preview's report may show of it.
    mask: Callable[[pulumi.Input[str]], pulumi.Output[str]]
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    wsgi_processes: int = 2


class Keystone(pulumi.ComponentResource):
    auth_url: str
    identity: Identity
    admin_openrc: pulumi.Output[str]
    clouds_yaml: pulumi.Output[str]

    def __init__(self, name: str, args: KeystoneArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Keystone", name, None, opts)
        host, profile = args.host, args.profile
        conn = host.connection
        prefix = f"{name}-{host.spec.name}"

        def after(*deps) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        _, urls = service_database(f"{name}-database", args.database, ["keystone"], "keystone", args.db_password,
                                   opts=after())

        conf_text = pulumi.Output.all(urls["keystone"], args.memcache_servers).apply(
            lambda v: render.merge_ini(
                render.render("keystone", "keystone.conf", profile.name, database_url=v[0], memcache_servers=v[1]),
                args.overrides,
            )
        )
        conf = config_file(f"{prefix}-config", conn, "/etc/keystone/keystone.conf", pulumi.Output.secret(conf_text),
                           mode="0640", group="keystone", opts=after(), shown=args.mask(conf_text))
        db_sync = RemoteCommand(
            f"{prefix}-db-sync", connection=conn,
            create=as_user("keystone", "keystone-manage db_sync"),
            check=as_user("keystone", "keystone-manage db_sync --check"),
            opts=after(conf),
        )
        keys = "--keystone-user keystone --keystone-group keystone"
        fernet = RemoteCommand(
            f"{prefix}-fernet", connection=conn,
            create=f"keystone-manage fernet_setup {keys} && keystone-manage credential_setup {keys}",
            delete="rm -rf /etc/keystone/fernet-keys /etc/keystone/credential-keys",
            check="test -s /etc/keystone/fernet-keys/0 && test -s /etc/keystone/credential-keys/0",
            opts=after(db_sync),
        )

        internal = f"http://{host.spec.name}:5000/v3/"
        self.auth_url = f"http://{args.public_host}:5000/v3/"
        self.internal_auth_url = internal
        bootstrap_cmd = (
            # The password comes on stdin and reaches keystone-manage in its environment, never in argv.
            "IFS= read -r OS_BOOTSTRAP_PASSWORD; export OS_BOOTSTRAP_PASSWORD; "
            + as_user(
                "keystone",
                "keystone-manage bootstrap "
                f"--bootstrap-admin-url {shlex.quote(internal)} --bootstrap-internal-url {shlex.quote(internal)} "
                f"--bootstrap-public-url {shlex.quote(self.auth_url)} --bootstrap-region-id {shlex.quote(args.region)}"
            )
        )
        bootstrap = RemoteCommand(
            f"{prefix}-bootstrap", connection=conn, create=bootstrap_cmd, update=bootstrap_cmd,
            stdin=pulumi.Output.from_input(args.admin_password).apply(lambda p: p + "\n"),
            opts=after(fernet),
        )

        # Apache: the packaged uwsgi unit gives way to the seeds' mod_wsgi site on the same port.
        server_name_text = render.render("apache", "servername.conf", profile.name, server_name=host.spec.name)
        server_name = config_file(f"{prefix}-apache-servername", conn, profile.path("web_server_name"),
                                  server_name_text, opts=after(bootstrap))
        # Apache listens only where a site says (each on the management address): no packaged `Listen 80`, and
        # Debian's default site disabled.
        ports = config_file(f"{prefix}-apache-ports", conn, profile.path("web_ports_conf"),
                            render.render("apache", "ports.conf", profile.name), opts=after(bootstrap))
        no_default_site = RemoteCommand(
            f"{prefix}-apache-no-default-site", connection=conn, create=profile.disable_default_site,
            delete=profile.enable_default_site, check=profile.default_site_disabled, opts=after(bootstrap))
        app = WsgiApp(site="keystone", title="Keystone", port=5000, script="keystone-wsgi-public", user="keystone",
                      process_group="keystone-public", log_name="keystone", standalone="keystone_standalone",
                      processes=args.wsgi_processes, limit_request_body=114688)
        apache = serve_with_apache(prefix, host, profile, app, reads=[conf], after=[bootstrap, no_default_site],
                                   parent=self, extra_files=[server_name, ports]).ready
        self.ready = apache

        # The explicit provider of every OpenStack-side resource: the admin through the public endpoint (its password
        # a secret input, encrypted in the state). Pulumi takes a provider into every `--target`ed run, so it
        # depends on nothing that such a run may skip (this component, Keystone's steps): the entities wait for
        # Keystone instead, and the provider only authenticates when first used.
        settings = dict(
            auth_url=self.auth_url, user_name="admin", password=pulumi.Output.secret(args.admin_password),
            tenant_name="admin", user_domain_name="Default", project_domain_name="Default", region=args.region,
            max_retries=5,  # a refused connection (Apache restarting) is retried; a 500 is not: see web_server
        )
        self.provider = openstack.Provider(f"{name}-openstack", **settings)
        ready = [apache]
        self.service_project = openstack.identity.Project(
            f"{name}-service-project", name="service", domain_id=DOMAIN, description="Service Project",
            opts=entity_options(self.provider, ready, self, f"{name}-service-project"))
        self.user_role = openstack.identity.Role(f"{name}-user-role", name="user",
                                                 opts=entity_options(self.provider, ready, self, f"{name}-user-role"))
        # The admin role is Keystone's bootstrap's, not managed here: its ID is read where bootstrap wrote it, so a
        # preview knows it without asking Keystone (and whatever else is to run again on the controller).
        query = f"mariadb -N -B -e {shlex.quote(ADMIN_ROLE_QUERY)}"
        admin_role = RemoteCommand(
            f"{prefix}-admin-role", connection=conn, create=f"id=$({query}); test -n \"$id\"; echo \"$id\"",
            check=f"test -n \"$({query})\"", keep_stdout=True, opts=after(bootstrap))
        admin_role_id = admin_role.stdout.apply(lambda out: (out or "").strip())
        self.identity = Identity(provider=self.provider, ready=ready, service_project_id=self.service_project.id,
                                 role_ids={"admin": admin_role_id}, provider_settings=settings)
        # Where a later site on the same web server may reload it: once Keystone answers and its own entities are
        # made (a reload restarts Keystone's WSGI daemons; a sign-in at that moment gets a 500).
        self.web_server = [apache, self.service_project, self.user_role]

        password = pulumi.Output.from_input(args.admin_password)
        self.admin_openrc = pulumi.Output.secret(password.apply(
            lambda p: render.render("keystone", "admin-openrc", profile.name, password=p, auth_url=self.auth_url,
                                    region=args.region)))
        self.clouds_yaml = pulumi.Output.secret(password.apply(
            lambda p: render.render("keystone", "clouds.yaml", profile.name, password=p, auth_url=self.auth_url,
                                    region=args.region)))
        # The admin's CLI on the controller, as the seeds use it (and the steps that remove a host's records).
        self.admin_cli = AdminCli(f". {ADMIN_OPENRC} && openstack", config_file(
            f"{prefix}-admin-openrc", conn, ADMIN_OPENRC, self.admin_openrc, mode="0600", opts=after(apache),
            shown=args.mask(self.admin_openrc)))
        self.register_outputs({"auth_url": self.auth_url})
