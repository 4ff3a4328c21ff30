"""Neutron, the network service, following the seeds and the install guide's self-service option: on the
controller its database, its Keystone registration (network, port 9696), neutron.conf and ml2_conf.ini,
`neutron-db-manage upgrade heads`, the API (uwsgi) and RPC server, and the network node's DHCP, L3 and
metadata agents; on every host the linuxbridge agent (VXLAN over the management network, the flat provider
network on the host's provider interface). Compute hosts get RabbitMQ only: no database, no Keystone
credentials. Units the agents' packages enable that this cloud does not run are masked.

The mechanism is linuxbridge with l2population: Open vSwitch and OVN need kernel modules this lab's kernel
does not have (README, "Network design")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import config_file, masked_service, platform_service, restarted_on
from .host import Host
from .providers.remote import RemoteFile

PORT = 9696
# The logical package sets (profiles.py) of each role: the network node's agents run on the controller.
PACKAGES = {
    "controller": ("neutron_server", "neutron_network_node", "neutron_linuxbridge"),
    "compute": ("neutron_linuxbridge",),
}
# The server's daemons besides the API, each restarted on writes of neutron.conf and ml2_conf.ini (a platform
# that has no periodic-workers daemon for a release runs those tasks in the RPC server).
SERVER_DAEMONS = ("neutron_rpc_server", "neutron_periodic_workers")
# Units brought by the agents' packages whose work the agents do themselves, per router or network.
MASKED = ("keepalived", "radvd", "haproxy")


@dataclass(frozen=True)
class NeutronArgs:
    ctx: ServiceContext
    hosts: Sequence[Host]  # every host: each runs the linuxbridge agent
    db_password: pulumi.Input[str]
    password: pulumi.Input[str]  # the neutron service user's
    nova_password: pulumi.Input[str]  # Neutron tells Nova about ports as the nova user
    metadata_secret: pulumi.Input[str]
    transport_url: pulumi.Input[str]
    nova_metadata_port: int
    physical_network: str = "provider"
    after: Sequence[pulumi.Resource] = ()  # Nova's metadata API (the metadata agent proxies to it)
    workers: int = 2


def neutron_conf(profile: str, server: bool, values: dict, overrides: dict) -> str:
    """neutron.conf for the server's host or an agent-only host: only the server's holds the database and
    Keystone credentials."""
    return render.merge_ini(render.render("neutron", "neutron.conf", profile, server=server, **values), overrides)


class Neutron(ServiceComponent):
    ready: list[pulumi.Resource]  # the API and RPC server, and every host's agents

    def __init__(self, name: str, args: NeutronArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Neutron", name, args.ctx, opts)
        ctx, host, profile = self.ctx, self.host, self.profile
        urls = self.database(["neutron"], "neutron", args.db_password)
        identity = self.register("network", "OpenStack Networking", PORT, "", "neutron", args.password)
        overrides = ctx.service_overrides("neutron", host)
        conf_text = pulumi.Output.all(
            urls["neutron"], args.transport_url, ctx.auth("neutron", args.password), ctx.auth("nova", args.nova_password),
        ).apply(lambda v: neutron_conf(profile.name, True, dict(
            database_url=v[0], transport_url=v[1], auth=v[2], nova_auth=v[3], region=ctx.region,
            workers=args.workers), overrides))
        conf = self.secret_config(profile.path("neutron_conf"), conf_text, group="neutron")
        ml2 = self.ml2_conf(host, args.physical_network)
        db_sync = self.run_as(
            "db-sync", "neutron",
            f"neutron-db-manage --config-file {profile.path('neutron_conf')} "
            f"--config-file {profile.path('neutron_ml2_conf')} upgrade heads",
            after=[conf, ml2])
        started = [db_sync, *identity.entities]
        api = self.uwsgi_api("api", "neutron_api", "neutron-api", PORT, "Neutron API", "neutron", [conf, ml2],
                             args.workers, after=started)
        server = [api] + [
            platform_service(f"{self.prefix}-{d.removeprefix('neutron_').replace('_', '-')}", host.connection, profile,
                             d, triggers=restarted_on(conf, ml2), opts=self.after(*started))
            for d in SERVER_DAEMONS if profile.has_service(d)
        ]
        masked = [masked_service(f"{self.prefix}-{unit}-off", host.connection, profile.service(unit), opts=self.after())
                  for unit in MASKED]

        # The network node (the controller): DHCP, L3 and metadata agents, each with its own file.
        secret = pulumi.Output.secret(args.metadata_secret)
        metadata_text = pulumi.Output.secret(secret.apply(lambda s: render.render(
            "neutron", "metadata_agent.ini", profile.name, nova_metadata_host=host.spec.name,
            nova_metadata_port=args.nova_metadata_port, metadata_secret=s)))
        agent_files = {
            "neutron_dhcp_agent": ("dhcp", "neutron_dhcp_conf", render.render("neutron", "dhcp_agent.ini", profile.name)),
            "neutron_l3_agent": ("l3", "neutron_l3_conf", render.render("neutron", "l3_agent.ini", profile.name)),
            "neutron_metadata_agent": ("metadata", "neutron_metadata_conf", metadata_text),
        }
        agents = []
        for service, (step, path, text) in agent_files.items():
            agent_conf = config_file(f"{self.prefix}-{step}-agent-config", host.connection, profile.path(path), text,
                                     mode="0640", group="neutron", opts=self.after())
            after = [*server, *masked, agent_conf, *(args.after if step == "metadata" else ())]
            agents.append(platform_service(f"{self.prefix}-{step}-agent", host.connection, profile, service,
                                           triggers=restarted_on(conf, agent_conf), opts=self.after(*after)))

        # The linuxbridge agent on every host (the controller's with the server's neutron.conf).
        bridges = []
        for h in args.hosts:
            if h is host:
                bridges.append(self.linuxbridge_agent(h, conf, ml2, args.physical_network, after=server))
                continue
            agent_conf = pulumi.Output.secret(pulumi.Output.from_input(args.transport_url).apply(
                lambda url, h=h: neutron_conf(profile.name, False, dict(transport_url=url),
                                              ctx.service_overrides("neutron", h))))
            host_conf = config_file(f"{self.service_name}-{h.spec.name}-config", h.connection,
                                    profile.path("neutron_conf"), agent_conf, mode="0640", group="neutron",
                                    opts=self.after())
            bridges.append(self.linuxbridge_agent(h, host_conf, self.ml2_conf(h, args.physical_network),
                                                  args.physical_network, after=server))
        self.ready = [*server, *agents, *bridges]
        self.register_outputs({})

    def ml2_conf(self, host: Host, physical_network: str) -> RemoteFile:
        """ml2_conf.ini: the server reads it, and Debian's linuxbridge agent on every host too."""
        text = render.render("neutron", "ml2_conf.ini", self.profile.name, physical_network=physical_network)
        return config_file(f"{self.service_name}-{host.spec.name}-ml2-config", host.connection,
                           self.profile.path("neutron_ml2_conf"), text, mode="0640", group="neutron", opts=self.after())

    def linuxbridge_agent(self, host: Host, conf: RemoteFile, ml2: RemoteFile, physical_network: str,
                          after: Sequence[pulumi.Resource]) -> pulumi.Resource:
        profile, prefix = self.profile, f"{self.service_name}-{host.spec.name}"
        text = render.render("neutron", "linuxbridge_agent.ini", profile.name, physical_network=physical_network,
                             provider_interface=host.spec.provider_interface, local_ip=host.address)
        agent_conf = config_file(f"{prefix}-linuxbridge-config", host.connection,
                                 profile.path("neutron_linuxbridge_conf"), text, mode="0640", group="neutron",
                                 opts=self.after())
        return platform_service(f"{prefix}-linuxbridge-agent", host.connection, profile, "neutron_linuxbridge_agent",
                                triggers=restarted_on(conf, ml2, agent_conf), opts=self.after(agent_conf, *after))
