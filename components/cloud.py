"""The assembly: builds the cloud's components from the typed config, in the seeds' install order.

Hosts first (names, then packages), then on the controller MariaDB, RabbitMQ, memcached and Keystone,
then Placement and the dashboard (both sites on Keystone's Apache), Glance and Nova, then Nova on every compute host and the controller's discover_hosts, then
Neutron (its server and network node on the controller, Open vSwitch and its agent on every host), and last
what the stack's `postDeploy` asks for (flavor, image, networks, router, security group, keypair).
Every later service takes what it needs from those (a database server, the transport URL, the admin
cloud) as data, so Pulumi's dependency graph is the install order.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import pulumi

from . import glance, horizon, keystone, mariadb, memcached, neutron, nova, nova_compute, placement, rabbitmq
from .blocks.service import ServiceContext
from .config import CloudConfig, HostSpec
from .glance import Glance, GlanceArgs
from .horizon import Horizon, HorizonArgs
from .host import Host, HostArgs, ssh_connection
from .keystone import Keystone, KeystoneArgs
from .lab import Lab, LabArgs, cache_root
from .mariadb import MariaDB, MariaDBArgs
from .memcached import Memcached, MemcachedArgs
from .nova import Nova, NovaArgs
from .neutron import Neutron, NeutronArgs
from .nova_compute import NovaCompute, NovaComputeArgs
from .passwords import Passwords
from .post_deploy import PostDeploy, PostDeployArgs
from .placement import Placement, PlacementArgs
from .providers.lab import host_apt_sources
from .providers.release import DeployedRelease
from .rabbitmq import RabbitMQ, RabbitMQArgs
from .render import service_overrides

# Every service, in install order: each declares the logical package sets (profiles.py) of each role it has.
SERVICES = (mariadb, rabbitmq, memcached, keystone, glance, placement, nova, nova_compute, neutron, horizon)


def host_packages(cfg: CloudConfig, host: HostSpec) -> tuple[str, ...]:
    return cfg.profile.package_set(*(name for service in SERVICES for role in host.roles
                                     for name in service.PACKAGES.get(role, ())))


class Cloud(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: CloudConfig, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:index:Cloud", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.passwords = Passwords(f"{name}-passwords", cfg.passwords, opts=child)
        # Nothing touches a host (or makes a lab node) before this: a run that names another release stops here.
        release = DeployedRelease(f"{name}-release", cfg.release, cfg.os_release, opts=child)

        if cfg.lab is not None:  # the hosts are this machine's own nodes, made by the stack
            self.lab: Optional[Lab] = Lab(
                "lab",
                LabArgs(cfg=cfg, stack=pulumi.get_stack(), cache_root=cache_root(), apt_sources=host_apt_sources(),
                        after=[release]),
                opts=child,
            )
            connections = self.lab.connections
        else:
            self.lab = None
            assert cfg.ssh.private_key is not None  # config.parse requires it without a lab
            key = cfg.ssh.private_key.output()
            connections = {h.name: ssh_connection(h, cfg.ssh, key) for h in cfg.hosts}

        names = {h.name: h.address for h in cfg.hosts}
        self.hosts = {
            h.name: Host(f"{name}-{h.name}", HostArgs(spec=h, connection=connections[h.name], names=names,
                                                      os_release=cfg.os_release, deadlines=cfg.deadlines,
                                                      after=[release]), opts=child)
            for h in cfg.hosts
        }
        every_host_checked = [host.name_check for host in self.hosts.values()]
        for h in cfg.hosts:
            self.hosts[h.name].install(cfg.profile, host_packages(cfg, h), after=every_host_checked)
        controller = self.hosts[cfg.controller.name]
        profile = cfg.profile

        self.mariadb = MariaDB("mariadb", MariaDBArgs(host=controller, profile=profile), opts=child)
        self.rabbitmq = RabbitMQ(
            "rabbitmq", RabbitMQArgs(host=controller, profile=profile, password=self.passwords["rabbitmq"]), opts=child
        )
        self.memcached = Memcached("memcached", MemcachedArgs(host=controller, profile=profile), opts=child)
        self.keystone = Keystone(
            "keystone",
            KeystoneArgs(
                host=controller,
                profile=profile,
                region=cfg.region,
                database=self.mariadb.server,
                db_password=self.passwords["keystone_db"],
                admin_password=self.passwords["keystone_admin"],
                memcache_servers=self.memcached.servers,
                public_host=cfg.vip or controller.address,
                overrides=service_overrides(cfg.overrides, controller.spec.overrides, "keystone"),
                mask=self.passwords.masked,
            ),
            opts=child,
        )

        pw = self.passwords
        ctx = ServiceContext(
            host=controller, profile=profile, region=cfg.region, identity=self.keystone.identity,
            database=self.mariadb.server, auth_url=self.keystone.internal_auth_url,
            public_auth_url=self.keystone.auth_url, memcache_servers=self.memcached.servers,
            public_host=cfg.vip or controller.address, overrides=cfg.overrides, mask=self.passwords.masked,
            admin_cli=self.keystone.admin_cli,
        )
        self.placement = Placement(
            "placement",
            PlacementArgs(ctx, db_password=pw["placement_db"], password=pw["placement_user"],
                          web_server=self.keystone.web_server),
            opts=child,
        )
        # The dashboard's settings and assets are made while Keystone's steps run; its site reloads the web server
        # once Placement's reload and Placement's own sign-ins (its registration) are done.
        self.horizon = Horizon(
            "horizon",
            HorizonArgs(ctx, secret_key=pw["horizon_secret_key"],
                        web_server=[*self.keystone.web_server, *self.placement.ready]),
            opts=child,
        )
        # Those two sites reload the web server Keystone runs in: every later Keystone sign-in waits for them.
        ctx = dataclasses.replace(ctx, identity=ctx.identity.after(self.placement.web_server, self.horizon.web_server))
        self.glance = Glance("glance", GlanceArgs(ctx, db_password=pw["glance_db"], password=pw["glance_user"]),
                             opts=child)
        self.nova = Nova(
            "nova",
            NovaArgs(ctx, db_password=pw["nova_db"], password=pw["nova_user"], transport_url=self.rabbitmq.transport_url,
                     glance_url=self.glance.url, placement_password=pw["placement_user"],
                     network_password=pw["neutron_user"], metadata_secret=pw["metadata_secret"],
                     after=[self.glance.ready, *self.placement.ready]),
            opts=child,
        )
        computes = [self.hosts[h.name] for h in cfg.with_role("compute")]
        self.nova_compute = NovaCompute(
            "nova-compute",
            NovaComputeArgs(ctx, hosts=computes, password=pw["nova_user"], placement_password=pw["placement_user"],
                            network_password=pw["neutron_user"],
                            transport_url=self.rabbitmq.transport_url, glance_url=self.glance.url,
                            novncproxy_base_url=self.nova.novncproxy_base_url, virt_type=cfg.virt_type,
                            after=self.nova.ready),
            opts=child,
        )
        mapped = [self.nova.discover_hosts([h.spec.name for h in computes], after=self.nova_compute.services)]
        self.neutron = Neutron(
            "neutron",
            NeutronArgs(ctx, hosts=list(self.hosts.values()), db_password=pw["neutron_db"], password=pw["neutron_user"],
                        nova_password=pw["nova_user"], metadata_secret=pw["metadata_secret"],
                        transport_url=self.rabbitmq.transport_url, nova_metadata_port=nova.METADATA_PORT,
                        after=[self.nova.metadata_ready]),
            opts=child,
        )
        self.post_deploy: Optional[PostDeploy] = None
        if cfg.post_deploy is not None and cfg.provider_network is not None:
            self.post_deploy = PostDeploy(
                "post-deploy",
                PostDeployArgs(identity=ctx.identity, spec=cfg.post_deploy, provider_network=cfg.provider_network,
                               cache_root=cache_root(), stack=pulumi.get_stack(),
                               after=[*self.nova.ready, *mapped, self.glance.ready, *self.neutron.ready]),
                opts=child,
            )

        # Exported on every stack: each host's management address and roles.
        self.hosts_summary = {h.name: {"address": h.address, "roles": list(h.roles)} for h in cfg.hosts}
        self.register_outputs({"hosts": self.hosts_summary})
