"""A lab stack deployed by the release before the `openstack` plugin (Keystone's entities on a hand-written
dynamic provider) is upgraded in place by this one: scripts/upgrade moves every entity to pulumi_openstack
without creating or deleting any in Keystone, the services keep authenticating, and the next `up` changes
nothing."""

import importlib.util
import io
import os
import subprocess
import tarfile
from collections import Counter

import pytest
from keystoneauth1 import session
from keystoneauth1.identity import v3

from tests.integration.conftest import PROGRAM, ROOT, copy_program, make_project, remove_program
from tests.integration.labstack import NODES, lab_stack, plaintext

BEFORE = "7a4decc"  # main before the openstack plugin's first commit
SERVICE_USERS = {"glance": "glance_user", "placement": "placement_user", "nova": "nova_user"}

_spec = importlib.util.spec_from_file_location("upgrade", os.path.join(ROOT, "scripts", "upgrade.py"))
upgrade = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(upgrade)


def checkout_program(commit: str, work) -> None:
    """The program files of `commit` in place of the project's (its stack config stays)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", commit, *PROGRAM],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"git archive {commit} failed (a shallow clone?): {archive.stderr.decode().strip()}")
    remove_program(work)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(work, filter="data")


def keystone(s):
    """Keystone as the admin sees it, with the stack's clouds.yaml credentials."""
    import openstack

    outputs = s.outputs()
    password = [plaintext(r["outputs"]["value"]) for r in s.export_stack().deployment["resources"]
                if r["urn"].endswith("::cloud-passwords-keystone_admin")][0]
    return openstack.connect(auth_url=outputs["auth_url"].value, username="admin", password=password,
                             project_name="admin", user_domain_name="Default", project_domain_name="Default",
                             region_name="RegionOne", load_yaml_config=False, load_envvars=False)


def entities(c) -> Counter:
    found = Counter()
    services = {s.id: s.name for s in c.identity.services()}
    found.update(f"service {name}" for name in services.values())
    found.update(f"endpoint {services[e.service_id]} {e.interface}" for e in c.identity.endpoints())
    found.update(f"user {u.name}" for u in c.identity.users())
    found.update(f"project {p.name}" for p in c.identity.projects())
    found.update(f"role {r.name}" for r in c.identity.roles())
    return found


def test_a_stack_of_the_release_before_upgrades_in_place(tmp_path, env):
    project = make_project(tmp_path, env)
    work, _ = project
    checkout_program(BEFORE, work)
    with lab_stack(project) as s:
        assert s.up().summary.result == "succeeded"  # the whole cloud, by the earlier release
        before = entities(keystone(s))
        old = [r["urn"] for r in s.export_stack().deployment["resources"] if "dynamic/keystone:" in r["type"]]
        assert len(old) == 21, old  # the admin session, the service project, the user role, 3 x 6 registrations

        copy_program(work)
        logged = []
        assert upgrade.upgrade(s, str(tmp_path / "adopt.json"), log=logged.append)
        print("\n".join(line for line in logged if line.startswith("upgrade:")))  # shown by pytest -rA

        state = s.export_stack().deployment["resources"]
        assert [r["urn"] for r in state if "dynamic/keystone:" in r["type"]] == []
        owned = [r for r in state if r["type"].startswith("openstack:identity/")]
        assert len(owned) == 20 and all("pulumi:providers:openstack::keystone-openstack" in r["provider"]
                                        for r in owned)
        c = keystone(s)
        after = entities(c)
        # Nothing duplicated, nothing left behind: Keystone holds exactly what it held before.
        assert after == before and max(after.values()) == 1, after
        catalog = {(e.service_id, e.interface) for e in c.identity.endpoints()}
        assert len(catalog) == 4 * 3
        passwords = {r["urn"].rsplit("::cloud-passwords-", 1)[1]: plaintext(r["outputs"]["value"])
                     for r in state if "::cloud-passwords-" in r["urn"]}
        for user, password_name in SERVICE_USERS.items():  # every service user still authenticates
            auth = v3.Password(auth_url=f"http://{NODES['controller']}:5000/v3/", username=user,
                               password=passwords[password_name],
                               user_domain_name="Default", project_name="service", project_domain_name="Default")
            assert session.Session(auth=auth).get_token(), user
        again = s.up()
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
        s.preview(refresh=True, expect_no_changes=True)
