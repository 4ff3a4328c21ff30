"""A service's registration in Keystone, as data: its user with the admin role on the service project, its
service entity, and its public/internal/admin endpoints (kolla's service-ks-register)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi

from ..providers.keystone import Entity

INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class RegistrationArgs:
    cloud: pulumi.Input[dict]  # the admin session's cloud (Keystone's `provider` output)
    region: str
    service: str  # e.g. "glance"
    service_type: str  # e.g. "image"
    description: str
    urls: Mapping[str, str]  # interface -> URL, for each of INTERFACES
    user: Optional[str] = None  # the service user, with...
    password: Optional[pulumi.Input[str]] = None
    project: str = "service"
    role: str = "admin"

    def __post_init__(self):
        missing = [i for i in INTERFACES if i not in self.urls]
        if missing:
            raise ValueError(f"{self.service}: no {', '.join(missing)} URL")


class KeystoneRegistration(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegistrationArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:KeystoneRegistration", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.entities: list[Entity] = []
        if args.user is not None:
            user = Entity(f"{name}-user", args.cloud, "user",
                          {"name": args.user, "password": args.password, "domain": "default"}, opts=child)
            role = Entity(f"{name}-{args.role}-role", args.cloud, "assignment",
                          {"user": args.user, "project": args.project, "role": args.role, "domain": "default"},
                          opts=pulumi.ResourceOptions(parent=self, depends_on=[user]))
            self.entities += [user, role]
        service = Entity(f"{name}-service", args.cloud, "service",
                         {"name": args.service, "type": args.service_type, "description": args.description}, opts=child)
        self.entities.append(service)
        for interface in INTERFACES:
            self.entities.append(Entity(
                f"{name}-{interface}-endpoint", args.cloud, "endpoint",
                {"service": args.service, "service_type": args.service_type, "interface": interface,
                 "url": args.urls[interface], "region": args.region},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
            ))
        self.register_outputs({})
