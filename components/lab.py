"""The lab: this machine's own cluster of systemd-nspawn nodes, one per host of the stack config.

A host bridge carries the management subnet (the deployer holds its first address); a package cache on
that address serves the nodes, which have no route out; one base image is shared copy-on-write by every
node. Each node's `connection` is what the rest of the program uses, exactly like a real host's.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from .config import CloudConfig
from .providers import lab as labp
from .providers.generated import GeneratedSshKey

HOST_PACKAGES = ["debootstrap", "systemd-container", "apt-cacher-ng", "iproute2", "openssh-client", "iputils-ping"]
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "ca-certificates",
    "iputils-ping", "procps", "curl",
]
CACHE_PORT = 3143  # not apt-cacher-ng's usual 3142, which a system-wide one may already hold


def cache_root() -> str:
    return os.environ.get("OSD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "openstack-deploy")


@dataclass(frozen=True)
class LabArgs:
    cfg: CloudConfig
    stack: str
    cache_root: str
    apt_sources: dict[str, str]
    after: Sequence[pulumi.Resource] = ()  # what must be done before anything is made on this machine


class Lab(pulumi.ComponentResource):
    connections: dict[str, pulumi.Output[dict]]

    def __init__(self, name: str, args: LabArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:lab:Lab", name, None, opts)
        cfg, spec = args.cfg, args.cfg.lab
        assert spec is not None
        child = pulumi.ResourceOptions(parent=self)
        prefix = cfg.management_cidr.prefixlen
        gateway = cfg.bridge_address()
        lab_dir = os.path.join(args.cache_root, "lab")
        stack_dir = os.path.join(lab_dir, "stacks", args.stack)

        sources = labp.debian_sources(args.apt_sources, spec.suite)  # (some: config.load checks it first)

        packages = labp.HostPackages(f"{name}-host-packages", HOST_PACKAGES,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        bridge = labp.Bridge(f"{name}-bridge", spec.bridge, f"{gateway}/{prefix}", opts=pulumi.ResourceOptions(parent=self, depends_on=[packages]))
        # The provider network's bridge holds its gateway address: this machine reaches provider and floating
        # addresses, and nothing else does (no forwarding beyond it).
        provider = cfg.provider_network
        provider_bridge = None
        if provider is not None and spec.provider_bridge:
            provider_bridge = labp.Bridge(
                f"{name}-provider-bridge", spec.provider_bridge, f"{provider.gateway}/{provider.cidr.prefixlen}",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[packages]))
        cache = labp.PackageCache(
            f"{name}-package-cache",
            {
                "address": gateway,
                "port": CACHE_PORT,
                "mirrors": sorted({s["uri"] for s in sources}),
                "cache_dir": os.path.join(lab_dir, "apt-cache"),
                "state_dir": os.path.join(stack_dir, "package-cache"),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bridge]),
        )
        main = next((s for s in sources if spec.suite in s["suites"]), sources[0])
        image = labp.BaseImage(
            f"{name}-base-image",
            {
                "suite": spec.suite,
                "mirror": labp.cache_url(gateway, CACHE_PORT, main["uri"]),
                "mirror_upstream": main["uri"],
                "include": BASE_PACKAGES,
                "images_dir": os.path.join(lab_dir, "images"),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cache]),
        )
        self.ssh_key = GeneratedSshKey(f"{name}-ssh-key", comment=f"openstack-deploy-{args.stack}-lab", opts=child)
        apt_sources = "".join(
            f"deb {labp.cache_url(gateway, CACHE_PORT, s['uri'])} {suite} main\n" for s in sources for suite in s["suites"]
        )

        self.connections = {}
        self.nodes: dict[str, labp.Node] = {}
        for host in cfg.hosts:
            node_opts = pulumi.ResourceOptions(parent=self)
            tag = hashlib.sha256(f"{args.stack}/{host.name}".encode()).hexdigest()[:8]
            machine = labp.machine_name(args.stack, host.name)
            network = labp.NodeNetwork(
                f"{name}-{host.name}-network",
                {
                    "netns": machine,
                    "veth": f"osd{tag}",
                    "bridge": spec.bridge,
                    "address_cidr": f"{host.address}/{prefix}",
                    "gateway": gateway,
                    # The second interface (no address: Open vSwitch bridges it) on the provider bridge.
                    **({"provider_veth": f"osp{tag}", "provider_bridge": spec.provider_bridge,
                        "provider_interface": host.provider_interface} if provider_bridge else {}),
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[bridge, *([provider_bridge] if provider_bridge else [])]),
            )
            node_dir = os.path.join(stack_dir, "nodes", host.name)
            rootfs = labp.NodeRootfs(
                f"{name}-{host.name}-rootfs",
                {
                    "node_dir": node_dir,
                    "base_rootfs": image.rootfs,
                    "hostname": host.name,
                    "authorized_key": self.ssh_key.public_key,
                    "apt_sources": apt_sources,
                },
                opts=node_opts,
            )
            connection = pulumi.Output.secret(
                pulumi.Output.all(self.ssh_key.private_key, rootfs.host_key).apply(
                    lambda v, address=host.address, pin=host.host_key: {
                        "host": address,
                        "port": 22,
                        "user": "root",
                        "private_key": v[0],
                        "dial_timeout": cfg.ssh.dial_timeout,
                        # The lab made the node's key: pinned from the first contact on (a stack's hostKey wins).
                        **({"host_key": pin or v[1]} if pin or v[1] else {}),
                        # A disposable node's disk goes with it: undo steps need not run (lab.disposable).
                        **({"disposable": True} if spec.disposable else {}),
                    }
                )
            )
            node = labp.Node(
                f"{name}-{host.name}-boot",
                {
                    "machine": machine,
                    "hostname": host.name,
                    "root": f"{node_dir}/root",
                    "netns": machine,
                    "log": os.path.join(node_dir, "console.log"),
                    "connection": connection,
                    "stop_timeout": 30,
                    # Neutron's agents write /proc/sys/net (forwarding in routers, IPv6 settings of ports).
                    "writable_api_vfs": "network",
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[network, rootfs, cache]),
            )
            self.nodes[host.name] = node
            self.connections[host.name] = node.connection
        self.register_outputs({})
