"""A lab stack deployed by the previous release (main before the issue on real hosts) is previewed, refreshed,
updated and destroyed by this one, in place: scripts/upgrade only keeps its release (zed, while the stack file now
names 2025.1), the first `up` records
what this release keeps (pinned host keys, write counts instead of hashes), restarts each service once and adds
what the old program lacked (Neutron, and the nodes' reboot for it), the services keep authenticating, and the next
`up` changes nothing. The stack of the release before the `openstack` plugin has its own path (scripts/upgrade
moves its Keystone entities): README, "Upgrading".

This is also the suite's test of the other supported release, Zed on Debian 12 (the rest runs on the default,
2025.1 on Debian 13): after the upgrade the cloud is checked as an operator would (a token, the catalog, the
compute services up, the hypervisor, every network agent alive). One Zed cloud serves both: a second one from bare
nodes would cost the suite some nine minutes, and every resource of this program is still made by this program
(Neutron and the nodes' new boot settings) or updated by it (everything else)."""

import io
import subprocess
import tarfile

import pytest
from keystoneauth1 import session
from pulumi import automation as auto
from keystoneauth1.identity import v3

from tests.integration.conftest import PROGRAM, ROOT, copy_program, make_project, remove_program, script_module
from tests.integration.labstack import ADMIN, AGENTS, NODES, PROVIDER_CIDR, lab_stack, on, plaintext, private_key, set_config

LAB_STACK_FILE = "stacks/Pulumi.lab.yaml"  # (the old program refuses keys of this one it does not know)
BEFORE = "e1c0b4d"  # main before the first commit of the issue on real hosts
SERVICE_USERS = {"glance": "glance_user", "placement": "placement_user", "nova": "nova_user",
                 "neutron": "neutron_user"}

upgrade = script_module("upgrade")


def checkout_program(commit: str, work) -> None:
    """The program files of `commit` and its lab stack file in place of the project's."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", commit, *PROGRAM, LAB_STACK_FILE],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"git archive {commit} failed (a shallow clone?): {archive.stderr.decode().strip()}")
    remove_program(work)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(work, filter="data")


def test_a_stack_of_the_previous_release_is_previewed_refreshed_updated_and_destroyed_by_this_one(tmp_path, env):
    project = make_project(tmp_path, env)
    work, _ = project
    checkout_program(BEFORE, work)
    with lab_stack(project, release="zed") as s:  # (the previous release deployed only zed)
        assert s.up().summary.result == "succeeded"  # the whole cloud, by the previous release

        copy_program(work)
        # The pulled stack file names the new default release; the stack keeps the one it runs (the guard starts there).
        s.set_config("openstack-deploy:release", auto.ConfigValue(value="2025.1"))
        set_config(s, "openstack-deploy:providerNetwork", {"cidr": PROVIDER_CIDR})  # new with Neutron
        logged = []
        assert upgrade.upgrade(s, str(tmp_path / "adopt.json"), log=logged.append)  # no Keystone entity to move
        assert s.get_config("openstack-deploy:release").value == "zed" and "this stack runs zed" in logged[0], logged
        assert not upgrade.upgrade(s, str(tmp_path / "adopt.json"), log=logged.append)  # once done, nothing to do
        s.preview(refresh=True)
        s.refresh()
        changes = s.up().summary.resource_changes
        print("first up after the upgrade:", changes)
        assert "delete" not in changes and "replace" not in changes, changes  # nothing on a host undone

        state = s.export_stack().deployment["resources"]
        assert not [r for r in state if r["type"].endswith("/remote:File") and "sha256" in (r.get("outputs") or {})]
        passwords = {r["urn"].rsplit("::cloud-passwords-", 1)[1]: plaintext(r["outputs"]["value"])
                     for r in state if "::cloud-passwords-" in r["urn"]}
        for user, password_name in SERVICE_USERS.items():  # every service user still authenticates
            auth = v3.Password(auth_url=f"http://{NODES['controller']}:5000/v3/", username=user,
                               password=passwords[password_name],
                               user_domain_name="Default", project_name="service", project_domain_name="Default")
            assert session.Session(auth=auth).get_token(), user
        zed_answers_as_an_operator_expects(private_key(s))
        again = s.up()
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
        s.preview(refresh=True, expect_no_changes=True)  # every host, file, grant and entity read: no drift


def zed_answers_as_an_operator_expects(key: str) -> None:
    assert on("controller", key, ". /etc/os-release && echo $VERSION_CODENAME") == "bookworm"
    assert on("controller", key, "dpkg-query -W -f='${Version}' keystone").startswith("2:22.")  # Zed's Keystone
    assert on("controller", key, f"{ADMIN} token issue -f value -c id")
    assert set(on("controller", key, f"{ADMIN} catalog list -f value -c Type").split()) == {
        "identity", "image", "placement", "compute", "network"}
    services = on("controller", key, f"{ADMIN} compute service list -f value -c Binary -c Host -c State")
    assert sorted(services.splitlines()) == ["nova-compute compute1 up", "nova-conductor controller up",
                                             "nova-scheduler controller up"]
    assert on("controller", key, f"{ADMIN} hypervisor list -f value -c 'Hypervisor Hostname'").split() == ["compute1"]
    agents = on("controller", key, f"{ADMIN} network agent list -f value -c 'Agent Type' -c Host -c Alive")
    assert sorted(agents.splitlines()) == sorted(f"{kind} {host} True" for kind, host in AGENTS), agents
    # Zed's dashboard (Horizon 23, Django 3.2), added by the upgrade: its login form, styled (assets compressed).
    assert on("controller", key, "dpkg-query -W -f='${Version}' openstack-dashboard").startswith("3:23.")
    login = on("controller", key, f"curl -sfL http://{NODES['controller']}/")
    assert 'name="password"' in login and "/static/dashboard/css/" in login
