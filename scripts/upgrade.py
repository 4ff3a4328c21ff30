"""Upgrades a stack deployed by an earlier release of this program, in place (run by scripts/upgrade).

First, a stack deployed before the release guard (`cloud-release`) keeps the OpenStack release it runs, zed (the
only one earlier versions deployed): when its config names another (or none, which now means the default, 2025.1),
the config is set to zed. Without this, the guard would start from the config, and a lab would rebuild its nodes on
the new release.

Then one migration: Keystone's entities moved from the hand-written dynamic provider
(`pulumi-python:dynamic/keystone:Entity`) to `pulumi_openstack` resources of the same names. Pulumi's aliases do
not cross providers, and the old entries' stored delete would remove by name what the new ones manage, so:
1. each old entity's Keystone ID is looked up (with the admin credentials the old state holds);
2. the old entries leave the state (`stack import` of the state without them): Keystone is not touched;
3. `up` imports every entity by its ID (nothing created twice), then a second `up` sets what the earlier release
   never set (endpoint names) and what Keystone does not show back (passwords, to the values they already have).
The plan is kept until it has been carried out, so a run cut short is resumed by running it again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pulumi import automation as auto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from components.adoption import ADOPT_ENV  # noqa: E402
from components.config import PROJECT  # noqa: E402
from components.profiles import PROFILES  # noqa: E402

OLD_ENTITY = "pulumi-python:dynamic/keystone:Entity"
OLD_SESSION = "pulumi-python:dynamic/keystone:AdminSession"
RELEASE_GUARD = "pulumi-python:dynamic/cloud:Release"
EARLIER = "zed"  # the only release the versions before the release guard deployed


def _plain(value):
    """A secret as the Automation API's export shows it (decrypted, wrapped)."""
    return json.loads(value["plaintext"]) if isinstance(value, dict) and "plaintext" in value else value


def _connect(cloud: dict):
    import openstack

    auth = {k: cloud[k] for k in ("auth_url", "username", "password", "project_name", "user_domain_name",
                                  "project_domain_name")}
    return openstack.connect(auth=auth, auth_type="password", region_name=cloud["region_name"],
                             load_yaml_config=False, load_envvars=False, identity_api_version="3", api_timeout=30)


def _one(found: list, what: str):
    if len(found) != 1:
        raise SystemExit(f"upgrade: Keystone has {len(found)} {what} (expected one); resolve that by hand first")
    return found[0]


def keystone_id(c, kind: str, spec: dict) -> str:
    """The ID pulumi_openstack's resource of this kind imports: Keystone's, or the role assignment's compound one."""
    domain = c.identity.find_domain(spec.get("domain", "default"), ignore_missing=False).id
    if kind == "project":
        return c.identity.find_project(spec["name"], domain_id=domain, ignore_missing=False).id
    if kind == "role":
        return c.identity.find_role(spec["name"], ignore_missing=False).id
    if kind == "user":
        return c.identity.find_user(spec["name"], domain_id=domain, ignore_missing=False).id
    if kind == "assignment":
        project = c.identity.find_project(spec["project"], domain_id=domain, ignore_missing=False).id
        user = c.identity.find_user(spec["user"], domain_id=domain, ignore_missing=False).id
        role = c.identity.find_role(spec["role"], ignore_missing=False).id
        return f"/{project}//{user}/{role}"  # domain, project, group, user, role
    services = [s for s in c.identity.services(type=spec.get("service_type", spec.get("type")))
                if s.name == spec.get("service", spec.get("name"))]
    service = _one(services, f"services {spec.get('service', spec.get('name'))!r}")
    if kind == "service":
        return service.id
    if kind == "endpoint":
        endpoints = list(c.identity.endpoints(service_id=service.id, interface=spec["interface"],
                                              region_id=spec["region"]))
        return _one(endpoints, f"{spec['interface']} endpoints of {spec['service']}").id
    raise SystemExit(f"upgrade: unknown Keystone entity kind {kind!r}")


def plan(deployment: dict) -> tuple[list[str], dict[str, str]]:
    """The old entries to drop from the state, and the ID to import each new resource by (by name)."""
    resources = deployment.get("resources", [])
    old = [r for r in resources if r["type"] in (OLD_ENTITY, OLD_SESSION)]
    entities = [r for r in old if r["type"] == OLD_ENTITY]
    if not entities:
        return [r["urn"] for r in old], {}
    cloud = _plain(entities[0]["outputs"]["cloud"])
    c = _connect(cloud)
    adopt = {}
    for r in entities:
        name = r["urn"].rsplit("::", 1)[1]
        adopt[name] = keystone_id(c, r["outputs"]["kind"], _plain(r["outputs"]["spec"]))
    return [r["urn"] for r in old], adopt


def without(deployment: dict, urns: list[str]) -> dict:
    """The state without these entries and without any reference to them (Keystone is not asked)."""
    gone = set(urns)
    kept = []
    for r in deployment["resources"]:
        if r["urn"] in gone:
            continue
        r = dict(r)
        if "dependencies" in r:
            r["dependencies"] = [d for d in r["dependencies"] if d not in gone]
        if "propertyDependencies" in r:
            r["propertyDependencies"] = {k: [d for d in v if d not in gone]
                                         for k, v in r["propertyDependencies"].items()}
        kept.append(r)
    return dict(deployment, resources=kept)


def _seconds(result: auto.UpResult) -> str:
    return f"{(result.summary.end_time - result.summary.start_time).total_seconds():.1f} s"


def _config(s: auto.Stack, key: str):
    try:
        return s.get_config(f"{PROJECT}:{key}").value
    except auto.CommandError:
        return None


def deployed_before_the_guard(deployment: dict) -> bool:
    kinds = {r["type"] for r in deployment.get("resources") or []}
    return RELEASE_GUARD not in kinds and any(k.startswith(("pulumi-python:dynamic/remote:", "pulumi-python:dynamic/lab:"))
                                              for k in kinds)


def keep_release(s: auto.Stack, deployment: dict, log=print) -> bool:
    """Names the deployed release in the config of a stack deployed before the release guard; False if not needed."""
    if not deployed_before_the_guard(deployment):
        return False
    configured = _config(s, "release") or next(iter(PROFILES[_config(s, "platform") or "debian"].releases))
    if configured == EARLIER:
        return False
    s.set_config(f"{PROJECT}:release", auto.ConfigValue(value=EARLIER))
    log(f"upgrade: this stack runs {EARLIER}: its config now names it ({PROJECT}:release: {EARLIER}, was "
        f"{configured}); a new release is a new stack (README, 'Releases')")
    return True


def upgrade(s: auto.Stack, plan_file: str, log=print) -> bool:
    """Carries the migrations out on stack `s`; False when there was nothing to do."""
    exported = s.export_stack()
    kept = keep_release(s, exported.deployment, log)
    return migrate_entities(s, exported, plan_file, log) or kept


def migrate_entities(s: auto.Stack, exported: auto.Deployment, plan_file: str, log=print) -> bool:
    """Moves Keystone's entities to the openstack provider; False when there is nothing to move."""
    if os.path.exists(plan_file):  # a run cut short: the state is already without the old entries
        with open(plan_file) as f:
            adopt = json.load(f)
        log(f"upgrade: resuming ({len(adopt)} Keystone entities to import)")
    else:
        urns, adopt = plan(exported.deployment)
        if not urns:
            return False
        os.makedirs(os.path.dirname(plan_file), exist_ok=True)
        with open(plan_file, "w") as f:
            json.dump(adopt, f)
        log(f"upgrade: {len(adopt)} Keystone entities move to the openstack provider; "
            f"{len(urns)} old state entries are dropped (Keystone is not touched)")
        s.import_stack(auto.Deployment(version=exported.version, deployment=without(exported.deployment, urns)))
    s.workspace.env_vars[ADOPT_ENV] = plan_file
    try:
        imported = s.up(on_output=log)
    finally:
        del s.workspace.env_vars[ADOPT_ENV]
    log(f"upgrade: imported in {_seconds(imported)}: {imported.summary.resource_changes}")
    settled = s.up(on_output=log)
    log(f"upgrade: settled in {_seconds(settled)}: {settled.summary.resource_changes}")
    os.remove(plan_file)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    args = parser.parse_args()
    s = auto.select_stack(stack_name=args.stack, work_dir=ROOT)
    # OSD_CACHE: set by scripts/env.sh, which scripts/upgrade sources.
    if not upgrade(s, os.path.join(os.environ["OSD_CACHE"], "upgrade", f"{args.stack}.adopt.json")):
        print(f"upgrade: stack {args.stack} is up to date; nothing to do")


if __name__ == "__main__":
    main()
