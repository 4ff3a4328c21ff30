"""What the install guide's "launch an instance" (and kolla's init-runonce) makes before the first server, as
`pulumi_openstack` resources through the admin's provider, each read back from the cloud on refresh: a flavor,
the project's guest image (built on this machine from Debian packages, its sha256 recorded), the flat provider
network and its subnet, a self-service network and subnet with a router whose gateway is on the provider network,
a security group that lets ICMP and SSH in, and a keypair whose private key is a stack output (secret)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_openstack as openstack

from .blocks.registration import Identity
from .config import PostDeploy as PostDeploySpec
from .config import ProviderNetwork
from .providers.generated import GeneratedSshKey
from .providers.guest import GuestImage

# The names an operator finds in the cloud (the install guide's, where it has one).
FLAVOR = {"name": "m1.tiny", "vcpus": 1, "ram": 128, "disk": 1}  # the guest needs 96 MiB (guest_image.MIN_RAM_MIB)
IMAGE = "openstack-deploy-guest"
PROVIDER, SELF_SERVICE, ROUTER = "provider", "selfservice", "router"
SECURITY_GROUP = "ssh-icmp"
KEYPAIR = "openstack-deploy"
# A network, subnet or router interface that a server the stack did not make still uses refuses a delete, which the
# provider retries until its timeout (10 min by default): a destroy stops after this one, naming the resource.
DELETE_TIMEOUT = "2m"


@dataclass(frozen=True)
class PostDeployArgs:
    identity: Identity
    spec: PostDeploySpec
    provider_network: ProviderNetwork
    cache_root: str  # where the guest image is built and kept
    stack: str
    after: Sequence[pulumi.Resource] = ()  # the APIs the resources are made through (Nova, Glance, Neutron)


class PostDeploy(pulumi.ComponentResource):
    server_private_key: pulumi.Output[str]  # the keypair's private key (secret)

    def __init__(self, name: str, args: PostDeployArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:PostDeploy", name, None, opts)
        net = args.provider_network
        provider = args.identity.another_provider(f"{name}-openstack")

        def cloud(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*args.after, *deps],
                                          custom_timeouts=pulumi.CustomTimeouts(delete=DELETE_TIMEOUT))

        self.flavor = openstack.compute.Flavor(f"{name}-flavor", is_public=True, **FLAVOR, opts=cloud())
        guest = GuestImage(f"{name}-guest-image", args.cache_root, opts=pulumi.ResourceOptions(parent=self))
        self.image = openstack.images.Image(
            f"{name}-image", name=IMAGE, container_format="bare", disk_format="raw", visibility="public",
            local_file_path=guest.path, min_ram_mb=guest.min_ram_mib, properties={"source_sha256": guest.sha256},
            opts=cloud())

        self.provider_network = openstack.networking.Network(
            f"{name}-provider-network", name=PROVIDER, external=True, shared=True,
            segments=[{"network_type": "flat", "physical_network": net.physical_network}], opts=cloud())
        provider_subnet = openstack.networking.Subnet(
            f"{name}-provider-subnet", name=f"{PROVIDER}-v4", network_id=self.provider_network.id, cidr=str(net.cidr),
            gateway_ip=net.gateway, allocation_pools=[{"start": net.pool[0], "end": net.pool[1]}], opts=cloud())
        self.self_service_network = openstack.networking.Network(
            f"{name}-self-service-network", name=SELF_SERVICE, opts=cloud())
        cidr = args.spec.self_service_cidr
        self_service_subnet = openstack.networking.Subnet(
            f"{name}-self-service-subnet", name=f"{SELF_SERVICE}-v4", network_id=self.self_service_network.id,
            cidr=str(cidr), gateway_ip=str(next(cidr.hosts())), opts=cloud())
        self.router = openstack.networking.Router(
            f"{name}-router", name=ROUTER, external_network_id=self.provider_network.id, opts=cloud(provider_subnet))
        openstack.networking.RouterInterface(
            f"{name}-router-interface", router_id=self.router.id, subnet_id=self_service_subnet.id, opts=cloud())

        group = openstack.networking.SecGroup(
            f"{name}-security-group", name=SECURITY_GROUP, description="ICMP and SSH from anywhere", opts=cloud())
        for rule, extra in (("icmp", {}), ("ssh", {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22})):
            openstack.networking.SecGroupRule(
                f"{name}-security-group-{rule}", security_group_id=group.id, direction="ingress", ethertype="IPv4",
                remote_ip_prefix="0.0.0.0/0", **({"protocol": "icmp"} | extra), opts=cloud())

        key = GeneratedSshKey(f"{name}-ssh-key", comment=f"openstack-deploy-{args.stack}-servers",
                              opts=pulumi.ResourceOptions(parent=self))
        self.keypair = openstack.compute.Keypair(f"{name}-keypair", name=KEYPAIR, public_key=key.public_key,
                                                 opts=cloud())
        self.server_private_key = key.private_key
        self.register_outputs({})
