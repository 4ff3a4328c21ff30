"""Nova on each compute host: libvirt, nova.conf WITHOUT any database section (compute hosts reach the
cloud's state only through RabbitMQ and the conductor), nova-compute.conf with the libvirt driver and a
virt_type chosen from the host's facts, and the nova-compute service. Children are named per host, so
adding a compute host adds only its own resources (and a new discover run on the controller)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.service import ServiceContext
from .blocks.steps import config_file, masked_service, restarted_on, systemd_service
from .host import Host
from .nova import nova_conf
from .providers.remote import RemoteCommand

# The logical package sets (profiles.py) this service needs, by role.
PACKAGES = {"compute": ("nova_compute",)}

# Prints "<kvm|qemu> <container type or none>": hardware virtualisation usable by this host, and whether it
# is itself a container (then libvirt cannot manage cgroups; the lab's nodes are systemd-nspawn containers).
FACTS = (
    "if [ -c /dev/kvm ] && grep -Eqw 'vmx|svm' /proc/cpuinfo; then v=kvm; else v=qemu; fi; "
    "c=$(systemd-detect-virt --container 2>/dev/null || true); echo \"$v ${c:-none}\""
)


@dataclass(frozen=True)
class NovaComputeArgs:
    ctx: ServiceContext  # the controller's view: Keystone, region, public host
    hosts: Sequence[Host]
    password: pulumi.Input[str]  # the nova service user's
    placement_password: pulumi.Input[str]
    network_password: pulumi.Input[str]  # the neutron service user's (Nova plugs ports through Neutron)
    transport_url: pulumi.Input[str]
    glance_url: str
    novncproxy_base_url: str
    virt_type: str  # auto, kvm or qemu (config.VIRT_TYPES)
    after: Sequence[pulumi.Resource] = ()  # the controller's conductor and scheduler


def hypervisor(configured: str, facts: str) -> tuple[str, str]:
    """The virt_type to use and why, from the config's choice and the host's facts line."""
    found = facts.split()[0] if facts.split() else "qemu"
    if configured != "auto":
        return configured, f"set by virtType: {configured}"
    if found == "kvm":
        return "kvm", "virtType auto: /dev/kvm and CPU virtualisation extensions found"
    return "qemu", "virtType auto: no usable hardware virtualisation (/dev/kvm or vmx/svm missing), so emulation"


class NovaCompute(pulumi.ComponentResource):
    services: list[pulumi.Resource]

    def __init__(self, name: str, args: NovaComputeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:NovaCompute", name, None, opts)
        ctx, profile = args.ctx, args.ctx.profile
        self.services = []

        def after(*deps) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        for host in args.hosts:
            prefix = f"{name}-{host.spec.name}"
            conn = host.connection
            facts = RemoteCommand(f"{prefix}-facts", connection=conn, create=FACTS, keep_stdout=True,
                                  opts=after())
            facts_line = facts.stdout.apply(lambda out: (out or "").strip())
            container = facts_line.apply(lambda line: line.split()[1] if len(line.split()) > 1 else "none")
            qemu_text = container.apply(lambda c: render.render("libvirt", "qemu.conf", profile.name,
                                                                in_container=c != "none", container=c))
            qemu = config_file(f"{prefix}-qemu-conf", conn, profile.path("libvirt_qemu_conf"), qemu_text,
                               opts=after())
            libvirt = systemd_service(f"{prefix}-libvirt", conn, profile.service("libvirt"),
                                      triggers=restarted_on(qemu), opts=after(qemu))
            # Nova decides what runs after a host boots (resume_guests_state_on_host_boot); libvirt-guests would
            # suspend the guests at shutdown and resume them behind Nova's back.
            guests_off = masked_service(f"{prefix}-libvirt-guests-off", conn, profile.service("libvirt_guests"),
                                        opts=after(libvirt))

            overrides = ctx.service_overrides("nova", host)
            conf_text = pulumi.Output.all(
                args.transport_url, ctx.auth("nova", args.password), ctx.auth("placement", args.placement_password),
                ctx.auth("neutron", args.network_password),
            ).apply(lambda v, host=host, overrides=overrides: nova_conf(profile.name, False, host.address, dict(
                transport_url=v[0], auth=v[1], placement_auth=v[2], network_auth=v[3], region=ctx.region, glance_url=args.glance_url,
                novncproxy_base_url=args.novncproxy_base_url), overrides))
            conf = config_file(f"{prefix}-config", conn, "/etc/nova/nova.conf", pulumi.Output.secret(conf_text),
                               mode="0640", group="nova", opts=after(), shown=ctx.mask(conf_text))
            driver_text = facts_line.apply(lambda line: render.render(
                "nova", "nova-compute.conf", profile.name,
                **dict(zip(("virt_type", "virt_type_reason"), hypervisor(args.virt_type, line)))))
            driver = config_file(f"{prefix}-driver-config", conn, "/etc/nova/nova-compute.conf", driver_text,
                                 mode="0640", group="nova", opts=after())
            # A host that leaves the stack: nova-compute stopped first, then its compute service deleted from the
            # cloud (and with it its resource provider and host mapping).
            records = ctx.records_of(f"{prefix}-records", host, "the compute service",
                                     "compute service list --service nova-compute --host {host}",
                                     "compute service delete", parent=self, after=args.after)
            self.services.append(systemd_service(
                f"{prefix}-service", conn, profile.service("nova_compute"),
                triggers=restarted_on(conf, driver),
                opts=after(conf, driver, libvirt, guests_off, records, *args.after),
            ))
        self.register_outputs({})
