"""Neutron, the network service, following the seeds and the install guide's self-service option: on the
controller its database, its Keystone registration (network, port 9696), neutron.conf and ml2_conf.ini,
`neutron-db-manage upgrade heads`, the API (uwsgi) and RPC server, and the network node's DHCP, L3 and
metadata agents; on every host Open vSwitch, its provider bridge on the host's provider interface, and the
Open vSwitch agent. Compute hosts get RabbitMQ only: no database, no Keystone credentials. Units the agents'
packages enable that this cloud does not run are masked.

The mechanism is Open vSwitch on its userspace datapath, with self-service networks as VLANs of the provider
network: 2025.1 has no linuxbridge driver any more, and the lab's kernel has no openvswitch module, no VLAN
module and no tunnels outside the kernel's (README, "Network design"). The same design serves Zed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import config_file, masked_service, platform_service, restarted_on
from .host import Host
from .providers.remote import RemoteCommand, RemoteFile

PORT = 9696
# The logical package sets (profiles.py) of each role: the network node's agents run on the controller.
PACKAGES = {
    "controller": ("neutron_server", "neutron_network_node", "neutron_ovs_agent"),
    "compute": ("neutron_ovs_agent",),
}
# The server's daemons besides the API, each restarted on writes of neutron.conf and ml2_conf.ini (a platform
# that has no periodic-workers daemon for a release runs those tasks in the RPC server).
SERVER_DAEMONS = ("neutron_rpc_server", "neutron_periodic_workers")
# Units brought by the agents' packages whose work the agents do themselves, per router or network.
MASKED = ("keepalived", "radvd", "haproxy")
PROVIDER_BRIDGE = "br-provider"
VLAN_RANGE = "1000:1999"  # the self-service networks' VLAN IDs on the provider network (a trunk on real hosts)


@dataclass(frozen=True)
class NeutronArgs:
    ctx: ServiceContext
    hosts: Sequence[Host]  # every host: each runs Open vSwitch and its agent
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
        text = render.render("neutron", "ml2_conf.ini", profile.name, physical_network=args.physical_network,
                             vlan_range=VLAN_RANGE)
        ml2 = config_file(f"{self.prefix}-ml2-config", host.connection, profile.path("neutron_ml2_conf"), text,
                          mode="0640", group="neutron", opts=self.after())
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

        # Open vSwitch and its agent on every host (the controller's agent with the server's neutron.conf).
        switches = {}
        for h in args.hosts:
            host_conf = conf
            if h is not host:
                agent_conf = pulumi.Output.secret(pulumi.Output.from_input(args.transport_url).apply(
                    lambda url, h=h: neutron_conf(profile.name, False, dict(transport_url=url),
                                                  ctx.service_overrides("neutron", h))))
                host_conf = config_file(f"{self.service_name}-{h.spec.name}-config", h.connection,
                                        profile.path("neutron_conf"), agent_conf, mode="0640", group="neutron",
                                        opts=self.after(), shown=ctx.mask(agent_conf))
            records = [] if h is host else [ctx.records_of(
                f"{self.service_name}-{h.spec.name}-records", h, "the network agents", "network agent list --host {host}",
                "network agent delete", parent=self, after=server)]  # (deleted from the cloud when the host leaves)
            switches[h.spec.name] = self.switch_agent(h, host_conf, args.physical_network, after=[*server, *records])
        # The network node (the controller): DHCP, L3 and metadata agents, each with its own file, plugging their
        # ports into br-int (made by the host's Open vSwitch agent).
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
                                     mode="0640", group="neutron", opts=self.after(),
                                     shown=ctx.mask(text) if step == "metadata" else None)
            after = [*server, *masked, agent_conf, switches[host.spec.name], *(args.after if step == "metadata" else ())]
            agents.append(platform_service(f"{self.prefix}-{step}-agent", host.connection, profile, service,
                                           triggers=restarted_on(conf, agent_conf), opts=self.after(*after)))

        self.ready = [*server, *agents, *switches.values()]
        self.register_outputs({})

    def switch_agent(self, host: Host, conf: RemoteFile, physical_network: str,
                     after: Sequence[pulumi.Resource]) -> pulumi.Resource:
        """Open vSwitch on `host`, its provider bridge (`br-provider` with the host's provider interface, on the
        userspace datapath like br-int) when it has one, and the Open vSwitch agent."""
        profile, prefix, conn = self.profile, f"{self.service_name}-{host.spec.name}", host.connection
        service = platform_service(f"{prefix}-openvswitch", conn, profile, "openvswitch", opts=self.after())
        # The userspace datapath reads ports (taps, veths) through sockets that drop the kernel's note that a
        # checksum is left to the hardware: a guest's TCP then looks corrupt to its connection tracking (the
        # security groups) and is dropped. With virtio-net headers on those sockets (OVS's "userspace TSO") it
        # is not. Read by ovs-vswitchd at start only.
        offloads = "ovs-vsctl get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null"
        switch = RemoteCommand(
            f"{prefix}-openvswitch-offloads", connection=conn,
            create=f"ovs-vsctl set Open_vSwitch . other_config:userspace-tso-enable=true && "
                   f"systemctl restart {shlex.quote(profile.service('openvswitch'))}",
            delete="ovs-vsctl --if-exists remove Open_vSwitch . other_config userspace-tso-enable || true",
            check=f"test \"$({offloads})\" = '\"true\"'",
            opts=self.after(service))
        interface = host.spec.provider_interface
        bridge = []
        if interface:
            b, i = PROVIDER_BRIDGE, shlex.quote(interface)
            bridge = [RemoteCommand(
                f"{prefix}-provider-bridge", connection=conn,
                create=f"ovs-vsctl --may-exist add-br {b} -- set bridge {b} datapath_type=netdev "
                       f"-- --may-exist add-port {b} {i} && ip link set {i} up && ip link set {b} up",
                delete=f"ovs-vsctl --if-exists del-br {b}",
                check=f"test \"$(ovs-vsctl iface-to-br {i})\" = {b} && "
                      f"test \"$(ovs-vsctl get bridge {b} datapath_type)\" = netdev",
                opts=self.after(switch))]
        text = render.render("neutron", "openvswitch_agent.ini", profile.name, physical_network=physical_network,
                             provider_bridge=PROVIDER_BRIDGE if interface else None)
        agent_conf = config_file(f"{prefix}-ovs-agent-config", conn, profile.path("neutron_ovs_conf"), text,
                                 mode="0640", group="neutron", opts=self.after())
        return platform_service(f"{prefix}-ovs-agent", conn, profile, "neutron_openvswitch_agent",
                                triggers=restarted_on(conf, agent_conf),
                                opts=self.after(agent_conf, switch, *bridge, *after))
