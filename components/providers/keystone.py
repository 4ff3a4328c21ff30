"""Keystone entities (projects, roles, users, role assignments, services, endpoints) through openstacksdk.

This does the job of pulumi-openstack's identity resources, whose provider plugin cannot be built here
(toolchain/README.md): each entity is a dynamic resource whose `read` asks Keystone what exists, so an
endpoint or a user deleted by hand shows in `pulumi preview --refresh` and comes back with
`pulumi up --refresh`. Every resource takes the admin `cloud` (a secret dict, the Keystone component's
output) the way pulumi-openstack's resources take an explicit provider.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


def connect(cloud: dict):
    import logging

    import openstack  # imported here: slow to import, and only the provider process needs it

    # keystoneauth warns on stderr (shown as a stack diagnostic) whenever version discovery fails.
    logging.getLogger("keystoneauth").setLevel(logging.ERROR)

    auth = {k: cloud[k] for k in ("auth_url", "username", "password", "project_name", "user_domain_name",
                                  "project_domain_name")}
    return openstack.connect(auth=auth, auth_type="password", region_name=cloud["region_name"],
                             interface=cloud.get("interface", "public"), load_yaml_config=False,
                             load_envvars=False, identity_api_version="3", api_timeout=30)


def _domain(c, name: str):
    return c.identity.find_domain(name, ignore_missing=False)


def _project(c, p):
    return c.identity.find_project(p["project"], domain_id=_domain(c, p.get("domain", "default")).id, ignore_missing=False)


def _user(c, p):
    return c.identity.find_user(p["user"], domain_id=_domain(c, p.get("domain", "default")).id, ignore_missing=False)


def _password_works(cloud: dict, p: dict) -> bool:
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=cloud["auth_url"], username=p["name"], password=p["password"],
                       user_domain_name=p.get("domain", "default"), unscoped=True)
    try:
        session.Session(auth=auth).get_token()
        return True
    except exceptions.Unauthorized:
        return False


# For each kind: find (the facts Keystone shows, or None if absent), ensure (make it so), remove.
def _find_project(c, cloud, p):
    found = c.identity.find_project(p["name"], domain_id=_domain(c, p.get("domain", "default")).id)
    return None if found is None else {"description": found.description or ""}


def _ensure_project(c, cloud, p):
    found = c.identity.find_project(p["name"], domain_id=_domain(c, p.get("domain", "default")).id)
    if found is None:
        c.identity.create_project(name=p["name"], domain_id=_domain(c, p.get("domain", "default")).id,
                                  description=p.get("description", ""))
    elif (found.description or "") != p.get("description", ""):
        c.identity.update_project(found, description=p.get("description", ""))


def _remove_project(c, cloud, p):
    found = c.identity.find_project(p["name"], domain_id=_domain(c, p.get("domain", "default")).id)
    if found is not None:
        c.identity.delete_project(found)


def _find_role(c, cloud, p):
    return None if c.identity.find_role(p["name"]) is None else {}


def _ensure_role(c, cloud, p):
    if c.identity.find_role(p["name"]) is None:
        c.identity.create_role(name=p["name"])


def _remove_role(c, cloud, p):
    found = c.identity.find_role(p["name"])
    if found is not None:
        c.identity.delete_role(found)


def _find_user(c, cloud, p):
    found = c.identity.find_user(p["name"], domain_id=_domain(c, p.get("domain", "default")).id)
    if found is None:
        return None
    return {"enabled": bool(found.is_enabled), "password_works": _password_works(cloud, p)}


def _ensure_user(c, cloud, p):
    domain = _domain(c, p.get("domain", "default")).id
    found = c.identity.find_user(p["name"], domain_id=domain)
    if found is None:
        c.identity.create_user(name=p["name"], domain_id=domain, password=p["password"], is_enabled=True)
    else:
        c.identity.update_user(found, password=p["password"], is_enabled=True)


def _remove_user(c, cloud, p):
    found = c.identity.find_user(p["name"], domain_id=_domain(c, p.get("domain", "default")).id)
    if found is not None:
        c.identity.delete_user(found)


def _assignment(c, p):
    return _project(c, p), _user(c, p), c.identity.find_role(p["role"], ignore_missing=False)


def _find_assignment(c, cloud, p):
    project = c.identity.find_project(p["project"], domain_id=_domain(c, p.get("domain", "default")).id)
    user = c.identity.find_user(p["user"], domain_id=_domain(c, p.get("domain", "default")).id)
    role = c.identity.find_role(p["role"])
    if None in (project, user, role):
        return None
    return {} if c.identity.validate_user_has_project_role(project, user, role) else None


def _ensure_assignment(c, cloud, p):
    c.identity.assign_project_role_to_user(*_assignment(c, p))


def _remove_assignment(c, cloud, p):
    if _find_assignment(c, cloud, p) is not None:
        c.identity.unassign_project_role_from_user(*_assignment(c, p))


def _services(c, p):
    return [s for s in c.identity.services(type=p["type"]) if s.name == p["name"]]


def _find_service(c, cloud, p):
    found = _services(c, p)
    return None if not found else {"description": found[0].description or "", "enabled": bool(found[0].is_enabled)}


def _ensure_service(c, cloud, p):
    found = _services(c, p)
    if not found:
        c.identity.create_service(name=p["name"], type=p["type"], description=p.get("description", ""), is_enabled=True)
    else:
        c.identity.update_service(found[0], description=p.get("description", ""), is_enabled=True)


def _remove_service(c, cloud, p):
    for s in _services(c, p):
        c.identity.delete_service(s)


def _endpoints(c, p):
    services = _services(c, {"name": p["service"], "type": p["service_type"]})
    if not services:
        return services, []
    return services, list(c.identity.endpoints(service_id=services[0].id, interface=p["interface"],
                                               region_id=p["region"]))


def _find_endpoint(c, cloud, p):
    _, found = _endpoints(c, p)
    return None if not found else {"url": found[0].url, "enabled": bool(found[0].is_enabled)}


def _ensure_endpoint(c, cloud, p):
    services, found = _endpoints(c, p)
    if not services:
        raise RuntimeError(f"endpoint {p['interface']}: service {p['service']} ({p['service_type']}) not found")
    if not found:
        c.identity.create_endpoint(service_id=services[0].id, interface=p["interface"], url=p["url"],
                                   region_id=p["region"], is_enabled=True)
    else:
        for extra in found[1:]:  # one endpoint per interface and region
            c.identity.delete_endpoint(extra)
        c.identity.update_endpoint(found[0], url=p["url"], is_enabled=True)


def _remove_endpoint(c, cloud, p):
    for e in _endpoints(c, p)[1]:
        c.identity.delete_endpoint(e)


KINDS: dict[str, tuple[Callable, Callable, Callable, dict[str, Any]]] = {
    # kind: (find, ensure, remove, the facts a correct Keystone shows, from the props)
    "project": (_find_project, _ensure_project, _remove_project, {}),
    "role": (_find_role, _ensure_role, _remove_role, {}),
    "user": (_find_user, _ensure_user, _remove_user, {"enabled": True, "password_works": True}),
    "assignment": (_find_assignment, _ensure_assignment, _remove_assignment, {}),
    "service": (_find_service, _ensure_service, _remove_service, {"enabled": True}),
    "endpoint": (_find_endpoint, _ensure_endpoint, _remove_endpoint, {"enabled": True}),
}
# Facts that mirror a prop: a description or URL changed in Keystone by hand is drift too.
MIRRORED = {"project": ("description",), "service": ("description",), "endpoint": ("url",)}


def _wanted(kind: str, spec: dict) -> dict:
    facts = dict(KINDS[kind][3])
    facts.update({k: spec.get(k, "") for k in MIRRORED.get(kind, ())})
    return facts


def entity_id(kind: str, spec: dict) -> str:
    keys = {"assignment": ("user", "project", "role"), "endpoint": ("service", "interface", "region")}.get(kind, ("name",))
    return f"{kind}:" + "/".join(str(spec[k]) for k in keys)


class _EntityProvider(ResourceProvider):
    def _apply(self, props):
        kind, spec = props["kind"], props["spec"]
        find, ensure, _, _ = KINDS[kind]
        c = connect(props["cloud"])
        ensure(c, props["cloud"], spec)
        return dict(props, facts=find(c, props["cloud"], spec))

    def create(self, props):
        return CreateResult(id_=entity_id(props["kind"], props["spec"]), outs=self._apply(props))

    def diff(self, _id, olds, news):
        changed = [k for k in ("kind", "spec") if olds.get(k) != news.get(k)]
        if olds.get("facts") != _wanted(news["kind"], news["spec"]):
            changed.append("facts")
        replaces = [] if olds.get("kind") == news.get("kind") and entity_id(olds["kind"], olds["spec"]) == entity_id(news["kind"], news["spec"]) else ["spec"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._apply(news))

    def read(self, id_, props):
        if _authorize(props["cloud"], 0) is not None:
            # Keystone does not answer (its host is down): what is recorded stays, as for any unreachable host.
            return ReadResult(id_=id_, outs=props)
        facts = KINDS[props["kind"]][0](connect(props["cloud"]), props["cloud"], props["spec"])
        if facts is None:
            return ReadResult(None, {})  # deleted by hand: the next up creates it again
        return ReadResult(id_=id_, outs=dict(props, facts=facts))

    def delete(self, _id, props):
        if props["cloud"].get("disposable"):
            return  # Keystone's database goes with its host's disk (the lab): nothing to undo
        KINDS[props["kind"]][2](connect(props["cloud"]), props["cloud"], props["spec"])


class Entity(Resource, module="keystone", name="Entity"):
    """One Keystone entity of `kind` (see KINDS) described by `spec`, managed with the admin `cloud`."""

    def __init__(self, name: str, cloud: pulumi.Input[dict], kind: str, spec: dict,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if kind not in KINDS:
            raise ValueError(f"unknown Keystone entity kind {kind!r}")
        props = {"cloud": cloud, "kind": kind, "spec": spec, "facts": None}
        secret = ["cloud", "spec"] if "password" in spec else ["cloud"]
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=secret))
        super().__init__(_EntityProvider(), name, props, opts)


def _authorize(cloud: dict, seconds: float) -> Optional[str]:
    """Gets an admin token, retrying for `seconds` while Keystone starts; the last error, or None."""
    import time

    deadline, error = time.monotonic() + seconds, "no attempt"
    while True:
        try:
            connect(cloud).authorize()
            return None
        except Exception as e:  # connection refused, 5xx while workers start, bad credentials
            error = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            return error
        time.sleep(2)


class _SessionProvider(ResourceProvider):
    def create(self, props):
        error = _authorize(props["cloud"], float(props.get("wait", 120)))
        if error is not None:
            raise RuntimeError(f"Keystone at {props['cloud']['auth_url']} issues no admin token: {error}")
        return CreateResult(id_=props["cloud"]["auth_url"], outs=props)

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds.get("cloud") != news.get("cloud"), replaces=[], delete_before_replace=False)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self.create(news).outs)

    def read(self, id_, props):
        if _authorize(props["cloud"], 0) is not None:
            return ReadResult(None, {})  # no token now: the next up waits for one again
        return ReadResult(id_=id_, outs=props)


class AdminSession(Resource, module="keystone", name="AdminSession"):
    """The explicit provider of the Keystone entities: created once the admin can get a token from the
    deployer; its `cloud` output is what every Entity takes, so they wait for it by data."""

    cloud: pulumi.Output[dict]

    def __init__(self, name: str, cloud: pulumi.Input[dict], wait: int = 120,
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["cloud"]))
        super().__init__(_SessionProvider(), name, {"cloud": cloud, "wait": wait}, opts)
