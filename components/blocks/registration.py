"""Keystone's side of the cloud: the identity layer every service registers in (the explicit `openstack` provider
built from Keystone's outputs, the `service` project, the roles), and a service's registration as data: its user
with a role on the service project, its service entity and its public/internal/admin endpoints (kolla's
service-ks-register). Every entity is a `pulumi_openstack.identity` resource through that one provider."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_openstack as openstack

from .. import adoption

INTERFACES = ("public", "internal", "admin")
DOMAIN = "default"  # the domain Keystone's bootstrap makes; services, users and the service project live in it


def entity_options(provider: openstack.Provider, ready: Sequence[pulumi.Resource], parent: pulumi.Resource, name: str,
                   unset_before: Sequence[str] = ()) -> pulumi.ResourceOptions:
    """A Keystone entity's options: through the provider once Keystone is `ready`, and adopted when
    scripts/upgrade says so."""
    return pulumi.ResourceOptions.merge(
        pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(ready)),
        adoption.options(name, unset_before))


@dataclass(frozen=True)
class AdminCli:
    """The admin's `openstack` CLI on the controller: `command` (its prefix) works once `ready` is done."""

    command: str
    ready: pulumi.Resource


@dataclass(frozen=True)
class Identity:
    """What registrations (and later every OpenStack-side resource) take from Keystone."""

    provider: openstack.Provider  # the admin, through Keystone's public endpoint
    ready: Sequence[pulumi.Resource]  # what serves Keystone: every entity waits for it
    service_project_id: pulumi.Output[str]
    role_ids: Mapping[str, pulumi.Output[str]]  # role name -> ID, for the roles services are given
    provider_settings: Mapping[str, Any] = None  # type: ignore[assignment]  # the provider's arguments

    def after(self, *resources: pulumi.Resource) -> "Identity":
        """The same identity layer, its entities waiting for `resources` too (a reload of the web server Keystone
        runs in, which restarts Keystone's WSGI daemons: a sign-in during it gets a 500)."""
        return dataclasses.replace(self, ready=[*self.ready, *resources])

    def another_provider(self, name: str) -> openstack.Provider:
        """The admin's provider again, for resources made once later services registered their endpoints. The
        provider signs in when first used, and a token's service catalog is fixed when Keystone issues it: the first
        provider signs in before Nova or Neutron have endpoints, and on a first deploy would not find them. Like the
        first, it depends on nothing and has no parent (Pulumi takes a provider into every `--target`ed run)."""
        return openstack.Provider(name, **self.provider_settings)


@dataclass(frozen=True)
class RegistrationArgs:
    identity: Identity
    region: str
    service: str  # e.g. "glance"
    service_type: str  # e.g. "image"
    description: str
    urls: Mapping[str, str]  # interface -> URL, for each of INTERFACES
    user: Optional[str] = None  # the service user, with...
    password: Optional[pulumi.Input[str]] = None
    role: str = "admin"  # ...this role on the service project

    def __post_init__(self):
        missing = [i for i in INTERFACES if i not in self.urls]
        if missing:
            raise ValueError(f"{self.service}: no {', '.join(missing)} URL")
        if self.user is not None and self.role not in self.identity.role_ids:
            raise ValueError(f"{self.service}: role {self.role!r} is not one of {sorted(self.identity.role_ids)}")


class KeystoneRegistration(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegistrationArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:KeystoneRegistration", name, None, opts)
        identity = args.identity

        def opts(child: str, unset_before: Sequence[str] = ()) -> pulumi.ResourceOptions:
            return entity_options(identity.provider, identity.ready, self, f"{name}-{child}", unset_before)

        self.entities: list[pulumi.CustomResource] = []  # what the service's API waits for
        if args.user is not None:
            user = openstack.identity.User(f"{name}-user", name=args.user, password=args.password, domain_id=DOMAIN,
                                           opts=opts("user", unset_before=["password"]))
            self.entities += [user, openstack.identity.RoleAssignment(
                f"{name}-{args.role}-role", user_id=user.id, project_id=identity.service_project_id,
                role_id=identity.role_ids[args.role], opts=opts(f"{args.role}-role"))]
        service = openstack.identity.ServiceV3(f"{name}-service", name=args.service, type=args.service_type,
                                               description=args.description, opts=opts("service"))
        self.entities.append(service)
        for interface in INTERFACES:
            self.entities.append(openstack.identity.EndpointV3(
                f"{name}-{interface}-endpoint", name=f"{args.service}-{interface}", service_id=service.id,
                interface=interface, url=args.urls[interface], endpoint_region=args.region,
                opts=opts(f"{interface}-endpoint", unset_before=["name"]),  # the earlier release named none
            ))
        self.register_outputs({})
