"""The cloud from bare lab nodes with the real engine, deployed once for this module on nodes that behave like an
operator's hosts (`lab.disposable: false`: every undo runs): Keystone, Glance, Placement, Nova and Neutron on the
controller, nova-compute and Neutron's linuxbridge agent on the compute node. Checked on the controller with the admin-openrc and from this
machine with the exported clouds.yaml; then a second run changes nothing, drift of every kind is previewed
exactly as `up --refresh` then repairs it (the parity table), a host that does not answer or offers another key
is named, and one Nova option restarts only Nova's services. The teardown destroys the cloud but not the nodes,
and checks that the hosts are clean (README, "What destroy leaves"), then destroys the nodes."""

import ipaddress
import json
import os
import subprocess
import threading
import time

import openstack.config
import openstack.connection
import pytest
import requests
import yaml
from pulumi import automation as auto

from components import render
from tests.integration import browser
from tests.integration.conftest import make_project, script_module
from components.providers import ssh
from tests.integration.labstack import (ADMIN, AGENTS, LAB, NODES, PROVIDER_CIDR, SPARE, STACK, lab_stack, on,
                                       plaintext, private_key, set_config, simulate_machine_restart, stack_secrets,
                                       system_state)

# The install order the preview of a fresh stack must show, as chains of real dependencies (the seeds' order
# where one step needs another; independent steps, like Nova's db syncs and Keystone's, run side by side).
CHAINS = [
    ["mariadb-controller-service", "keystone-database", "keystone-controller-config", "keystone-controller-db-sync",
     "keystone-controller-fernet", "keystone-controller-bootstrap", "keystone-controller-apache",
     "keystone-service-project", "glance-identity-admin-role"],
    ["keystone-controller-apache", "glance-identity-user", "glance-controller-api", "nova-controller-api",
     "nova-compute-compute1-service"],
    ["keystone-controller-apache", "keystone-service-project", "placement-controller-apache",
     "placement-identity-user", "nova-controller-conductor"],
    # Placement's site reloads the Apache Keystone runs in: no sign-in for an entity while it does.
    ["placement-controller-apache", "glance-identity-user"], ["placement-controller-apache", "neutron-identity-user"],
    ["nova-database", "nova-controller-config", "nova-controller-api-db-sync", "nova-controller-cell0",
     "nova-controller-cell1", "nova-controller-db-sync", "nova-controller-conductor",
     "nova-compute-compute1-service", "nova-controller-discover-hosts"],
    ["neutron-database", "neutron-controller-config", "neutron-controller-db-sync", "neutron-controller-api",
     "neutron-compute1-ovs-agent"],
    ["nova-controller-metadata-api", "neutron-controller-metadata-agent"],
    # The dashboard's site reloads the same Apache, after Placement's, and before any later sign-in.
    ["horizon-controller-settings", "horizon-controller-static", "horizon-controller-apache", "glance-identity-user"],
    ["placement-controller-apache", "placement-identity-user", "horizon-controller-apache", "neutron-identity-user"],
]
ADDRESSES = {address: node for node, address in NODES.items()}
preview_report = script_module("preview_report")
timeline = script_module("timeline")
FIRST_DEPLOY = {}  # the cloud fixture's first up, drawn: {"timeline": timeline.Timeline}


def is_lab(resource) -> bool:
    """The lab's own resources (the nodes and what makes them) and what holds them: kept by the teardown's first
    destroy, so the hosts can be looked at after the cloud is gone."""
    kind = resource["type"]
    return (kind.startswith(("pulumi-python:dynamic/lab:", "pulumi:providers:pulumi-python", "pulumi:pulumi:Stack"))
            or kind in ("openstack-deploy:index:Cloud", "openstack-deploy:lab:Lab", "pulumi-python:dynamic/cloud:Release")
            or resource["urn"].endswith("::lab-ssh-key"))


def host_footprint(state) -> dict:
    """What the program put on each host (the spare one too, when the stack has it), from its state:
    {node: (files, units, packages)}."""
    nodes = {address: node for node, address in {**NODES, **SPARE}.items()}
    found = {}
    for r in state:
        outs = r.get("outputs") or {}
        conn = plaintext(outs.get("connection")) if outs.get("connection") else None
        if not isinstance(conn, dict) or conn.get("host") not in nodes:
            continue
        files, units, packages = found.setdefault(nodes[conn["host"]], (set(), set(), set()))
        if r["type"].endswith("/remote:File"):
            files.add(outs["path"])
        elif r["type"].endswith("/remote:Packages"):
            packages.update(outs["packages"])
        elif r["type"].endswith("/remote:Command"):
            create = plaintext(outs.get("create")) or ""
            for marker in ("systemctl enable -q ", "systemctl mask -q "):
                if marker in create:
                    units.add(create.split(marker, 1)[1].split()[0].strip("';&"))
    return found


def leftovers_on(node, key, files, units, packages) -> list[str]:
    """What of the cloud is still on a host after destroy: files it wrote, units running, enabled or masked,
    packages, service databases, the managed /etc/hosts block."""
    script = (
        f"for f in {' '.join(sorted(files))}; do [ -e $f ] && echo file $f; done; "
        f"for u in {' '.join(sorted(units))}; do s=$(systemctl is-enabled $u 2>/dev/null); "
        "case $s in enabled|masked|static|alias) echo unit $u $s;; esac; systemctl is-active -q $u && echo running $u; done; "
        f"dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\n' {' '.join(sorted(packages))} 2>/dev/null "
        "| awk '$2 == \"installed\" {print \"package \" $1}'; "
        "for d in keystone glance placement nova nova_api nova_cell0 neutron; do [ -d /var/lib/mysql/$d ] && echo database $d; done; "
        "grep -q '^# BEGIN openstack-deploy' /etc/hosts && echo etc-hosts block; "
        "[ -e /etc/keystone/fernet-keys ] && echo file /etc/keystone/fernet-keys; true"
    )
    return on(node, key, script).splitlines()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, env):
    """(stack, preview of the fresh stack, result of the first up, lab key)."""
    with lab_stack(make_project(tmp_path_factory.mktemp("cloud"), env), disposable=False, post_deploy=True) as s:
        preview = s.preview()
        recorder = timeline.Recorder()
        up = s.up(on_event=recorder)
        hosts = json.loads(s.get_config("openstack-deploy:hosts").value)
        os.makedirs(browser.ARTIFACTS, exist_ok=True)
        FIRST_DEPLOY["timeline"] = timeline.render(recorder, s.export_stack().deployment["resources"], hosts,
                                                   os.path.join(browser.ARTIFACTS, "timeline-first-deploy.png"),
                                                   title="the lab from bare nodes")
        key = private_key(s)
        yield s, preview, up, key
        # The teardown destroys the cloud and not the nodes, deleting every Keystone entity (in Keystone, while it
        # still runs), then checks what is left on the hosts; lab_stack then destroys the nodes.
        state = s.export_stack().deployment["resources"]
        identity = {r["urn"] for r in state if r["type"].startswith("openstack:identity/")}
        written = host_footprint(state)
        deleted = set()

        def record(event):
            if event.res_outputs_event and event.res_outputs_event.metadata.op == "delete":
                deleted.add(event.res_outputs_event.metadata.urn)

        s.destroy(target=[r["urn"] for r in state if not is_lab(r)], on_event=record)
        assert len(identity) == 26 and identity <= deleted, sorted(identity - deleted)
        assert s.export_stack().deployment.get("pending_operations") in (None, [])
        for node, (paths, units, packages) in written.items():
            assert leftovers_on(node, key, paths, units, packages) == [], node


def test_the_preview_of_a_fresh_stack_shows_the_seeds_install_order(cloud):
    _, preview, _, _ = cloud
    lines = [line.strip() for line in preview.stdout.splitlines() if line.lstrip().startswith("+ ")]
    for chain in CHAINS:
        positions = []
        for name in chain:
            at = [i for i, line in enumerate(lines) if name in line.split()]
            assert at, (name, preview.stdout)
            positions.append(at[0])
        assert positions == sorted(positions), (chain, preview.stdout)


def test_the_first_deploys_timeline_has_a_lane_per_host_and_its_critical_path_ends_the_run(cloud):
    drawn = FIRST_DEPLOY["timeline"]
    assert list(drawn.lanes)[:len(NODES)] == list(NODES)  # the hosts' lanes first, in the stack's order
    assert set(drawn.lanes) - set(NODES) <= {"cloud APIs", "this machine"}
    names = {lane: {step.name for step in steps} for lane, steps in drawn.lanes.items()}
    assert {"cloud-controller-packages", "keystone-controller-db-sync", "keystone-database",
            "nova-compute-compute1-records"} <= names["controller"]
    assert {"cloud-compute1-packages", "nova-compute-compute1-service", "neutron-compute1-ovs-agent"} <= names["compute1"]
    assert "keystone-service-project" in names["cloud APIs"] and "lab-controller-boot" in names["this machine"]
    assert all(step.status == "done" for step in drawn.steps)
    path = drawn.critical
    assert path[-1].end == max(step.end for step in drawn.steps)
    assert all(a.end <= b.start + 0.5 for a, b in zip(path, path[1:]))  # each waited for the one before it
    with open(os.path.join(browser.ARTIFACTS, "timeline-first-deploy.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_keystone_answers_on_the_controller_and_from_here(cloud, tmp_path):
    _, _, up, key = cloud
    assert up.outputs["auth_url"].value == f"http://{NODES['controller']}:5000/v3/"
    assert up.outputs["admin_openrc"].secret and up.outputs["clouds_yaml"].secret

    # On the controller, with the admin-openrc (0600), as the seeds do.
    assert on("controller", key, "stat -c %a /root/admin-openrc") == "600"
    assert on("controller", key, f"{ADMIN} token issue -f value -c id")
    assert {"admin", "service"} <= set(on("controller", key, f"{ADMIN} project list -f value -c Name").split())
    assert "user" in on("controller", key, f"{ADMIN} role list -f value -c Name").split()
    # Apache serves Keystone and Placement; Debian's uwsgi units for them are masked; AMQP, memcached, SQL
    # and the APIs on the management address.
    for unit in ("keystone", "placement-api"):
        assert on("controller", key, f"systemctl is-enabled {unit} || true") == "masked"
    listening = on("controller", key, "ss -Hltn | awk '{print $4}'").split()
    for port in ("5000", "3306", "5672", "11211", "9292", "8778"):
        assert f"{NODES['controller']}:{port}" in listening, (port, listening)
    assert "guest" not in on("controller", key, "rabbitmqctl -q list_users | cut -f1").split()

    # From this machine, with the exported clouds.yaml and openstacksdk.
    conn = connect(up, tmp_path)
    assert {"admin", "service"} <= {p.name for p in conn.identity.projects()}


def connect(up, tmp_path) -> openstack.connection.Connection:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(up.outputs["clouds_yaml"].value)
    assert yaml.safe_load(clouds.read_text())["clouds"]["admin"]["auth"]["auth_url"] == up.outputs["auth_url"].value
    config = openstack.config.OpenStackConfig(config_files=[str(clouds)], load_envvars=False)
    conn = openstack.connection.Connection(config=config.get_one(cloud="admin"))
    assert conn.authorize()
    return conn


def test_the_catalog_has_identity_image_placement_and_compute_with_three_interfaces_each(cloud):
    _, _, _, key = cloud
    catalog = json.loads(on("controller", key, f"{ADMIN} catalog list -f json"))
    assert sorted(entry["Type"] for entry in catalog) == ["compute", "identity", "image", "network", "placement"]
    for entry in catalog:
        interfaces = sorted(e["interface"] for e in entry["Endpoints"])
        assert interfaces == ["admin", "internal", "public"], entry


def test_every_keystone_entity_is_a_pulumi_openstack_resource(cloud):
    s, _, _, _ = cloud
    state = s.export_stack().deployment["resources"]
    assert [r["type"] for r in state if "keystone" in r["type"] and r["type"].startswith("pulumi-python:")] == []
    kinds = sorted(r["type"].split(":")[-1] for r in state if r["type"].startswith("openstack:identity/"))
    assert kinds == ["EndpointV3"] * 12 + ["Project"] + ["Role"] + ["RoleAssignment"] * 4 + ["ServiceV3"] * 4 \
        + ["User"] * 4
    # Keystone's, and the post-deploy resources' own (it signs in once their services have endpoints).
    providers = [r for r in state if r["type"] == "pulumi:providers:openstack"]
    assert sorted(r["urn"].split("::")[-1] for r in providers) == ["keystone-openstack", "post-deploy-openstack"]
    assert {r["inputs"]["authUrl"] for r in providers} == {f"http://{NODES['controller']}:5000/v3/"}


def test_keystone_drift_made_by_hand_is_previewed_and_repaired(cloud, tmp_path):
    s, _, up, _ = cloud
    conn = connect(up, tmp_path)
    glance = next(conn.identity.services(type="image"))
    internal = next(conn.identity.endpoints(service_id=glance.id, interface="internal"))
    conn.identity.delete_endpoint(internal)
    # Placement's user: a refresh reads nothing through Placement. (Taking Nova's role away would make Nova's
    # token checks fail, and the refresh of the post-deploy key pair with them: a 503 from Nova.)
    placement = conn.identity.find_user("placement", domain_id="default")
    service = conn.identity.find_project("service", domain_id="default")
    admin = conn.identity.find_role("admin")
    conn.identity.unassign_project_role_from_user(service, placement, admin)
    conn.identity.update_user(placement, description="edited by hand", is_enabled=False)

    drift = s.preview(refresh=True, diff=True)
    assert drift.change_summary == {"create": 2, "update": 1, "same": drift.change_summary["same"]}, \
        drift.change_summary
    for name in ("glance-identity-internal-endpoint", "placement-identity-admin-role", "placement-identity-user"):
        assert name in drift.stdout, name
    s.up(refresh=True)
    assert [e.url for e in conn.identity.endpoints(service_id=glance.id, interface="internal")] == ["http://controller:9292"]
    assert conn.identity.validate_user_has_project_role(service, placement, admin)
    placement = conn.identity.get_user(placement.id)
    assert placement.is_enabled and not placement.description
    again = s.up()
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes


def test_a_refresh_while_keystone_is_down_names_it_instead_of_showing_no_change(cloud):
    s, _, _, key = cloud
    on("controller", key, "systemctl stop apache2")
    try:
        with pytest.raises(auto.CommandError) as failed:
            s.preview(refresh=True)
        assert f"{NODES['controller']}:5000" in str(failed.value)
    finally:
        on("controller", key, "systemctl start apache2 && timeout 60 sh -c "
                              "'until curl -sf -o /dev/null http://controller:5000/v3/; do sleep 1; done'")


def test_an_image_uploaded_from_here_becomes_active(cloud, tmp_path):
    _, _, up, key = cloud
    image_file = tmp_path / "tiny.raw"
    image_file.write_bytes(b"\0" * (1 << 20))  # a 1 MiB raw disk: enough for Glance to store and checksum
    conn = connect(up, tmp_path)
    image = conn.image.create_image(name="tiny", filename=str(image_file), disk_format="raw",
                                    container_format="bare", wait=True, timeout=120)
    assert conn.image.get_image(image.id).status == "active"
    assert "tiny active" in on("controller", key, f"{ADMIN} image list -f value -c Name -c Status")


def test_nova_runs_on_both_sides_and_sees_the_compute_node(cloud):
    _, _, _, key = cloud
    services = json.loads(on("controller", key, f"{ADMIN} compute service list -f json"))
    state = {(s["Binary"], s["Host"]): (s["State"], s["Status"]) for s in services}
    for binary, host in (("nova-scheduler", "controller"), ("nova-conductor", "controller"),
                         ("nova-compute", "compute1")):
        assert state.get((binary, host)) == ("up", "enabled"), services
    assert "compute1" in on("controller", key, f"{ADMIN} hypervisor list -f value -c 'Hypervisor Hostname'").split()
    assert "compute1" in on("controller", key, f"{ADMIN} resource provider list -f value -c name").split()
    on("controller", key, "systemctl is-active -q nova-api nova-api-metadata nova-scheduler nova-conductor nova-novncproxy")
    # The metadata API (the seeds' enabled_apis; Neutron's metadata agent asks it) lists its versions.
    assert "latest" in on("controller", key, "curl -sf http://controller:8775/").split()
    listening = on("controller", key, "ss -Hltn | awk '{print $4}'").split()
    assert f"{NODES['controller']}:6080" in listening or "0.0.0.0:6080" in listening
    cells = on("controller", key, "runuser -u nova -- nova-manage cell_v2 list_cells")
    assert " cell0 " in cells and " cell1 " in cells
    # Exit 0: every check passes (the table goes to the failure message otherwise).
    on("controller", key, "nova-status upgrade check > /tmp/status 2>&1 || { cat /tmp/status >&2; exit 1; }")
    # No hardware virtualisation in the lab's containers: emulation, and libvirt without cgroups of its own.
    assert "virt_type = qemu" in on("compute1", key, "cat /etc/nova/nova-compute.conf")
    assert "cgroup_controllers = [ ]" in on("compute1", key, "cat /etc/libvirt/qemu.conf")


def test_every_network_agent_is_alive_and_the_api_answers_on_the_management_address(cloud):
    _, _, _, key = cloud
    agents = json.loads(on("controller", key, f"{ADMIN} network agent list -f json"))
    assert {(a["Agent Type"], a["Host"]) for a in agents} == AGENTS, agents
    assert all(a["Alive"] in (True, ":-)") and a["State"] in (True, "UP") for a in agents), agents
    listening = on("controller", key, "ss -Hltn | awk '{print $4}'").split()
    assert f"{NODES['controller']}:9696" in listening, listening
    # The nodes' /proc/sys/net is writable (routers forward; ports set their IPv6 options).
    on("controller", key, "sysctl -qw net.ipv4.conf.all.forwarding=$(sysctl -n net.ipv4.conf.all.forwarding)")


def answers_ping(address: str, seconds: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subprocess.run(["ping", "-c", "1", "-W", "2", address], capture_output=True).returncode == 0:
            return True
        time.sleep(1)
    return False


def test_servers_boot_and_answer_on_a_floating_ip_and_on_the_provider_network(cloud, tmp_path):
    """The install guide's "launch an instance", from this machine with openstacksdk and the post-deploy resources:
    one server on the self-service network reached through a floating IP (ping, SSH with the stack's keypair, the
    metadata service inside it, its console log), one on the provider network reached directly (ping)."""
    _, _, up, _ = cloud
    conn = connect(up, tmp_path)
    image = conn.image.find_image("openstack-deploy-guest", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    provider = conn.network.find_network("provider", ignore_missing=False)
    selfservice = conn.network.find_network("selfservice", ignore_missing=False)
    common = dict(image_id=image.id, flavor_id=flavor.id, key_name="openstack-deploy",
                  security_groups=[{"name": "ssh-icmp"}])
    servers = [conn.compute.create_server(name="test-selfservice", networks=[{"uuid": selfservice.id}], **common),
               conn.compute.create_server(name="test-provider", networks=[{"uuid": provider.id}], **common)]
    floating = None
    try:
        inside, direct = (conn.compute.wait_for_server(server, wait=300) for server in servers)
        port = next(conn.network.ports(device_id=inside.id))
        floating = conn.network.create_ip(floating_network_id=provider.id, port_id=port.id)
        assert ipaddress.ip_address(floating.floating_ip_address) in ipaddress.ip_network(PROVIDER_CIDR), floating
        assert answers_ping(floating.floating_ip_address, 240), floating.floating_ip_address
        client = ssh.connect({"host": floating.floating_ip_address, "user": "root",
                              "private_key": up.outputs["server_private_key"].value}, dial_timeout=240)
        try:
            meta = ssh.run(client, "curl -s http://169.254.169.254/openstack/latest/meta_data.json", timeout=60)
            ec2_id = ssh.run(client, "curl -s http://169.254.169.254/latest/meta-data/instance-id", timeout=60)
        finally:
            client.close()
        assert json.loads(meta.stdout)["uuid"] == inside.id, meta
        assert ec2_id.stdout.strip().startswith("i-"), ec2_id  # (the EC2 API's own ID form)
        assert "openstack-deploy guest" in conn.compute.get_server_console_output(inside)["output"]
        address = direct.addresses["provider"][0]["addr"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(PROVIDER_CIDR)
        assert answers_ping(address, 240), address
    finally:
        if floating is not None:
            conn.network.delete_ip(floating)
        for server in servers:
            conn.compute.delete_server(server)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=120)


def test_the_dashboard_answers_with_its_login_form_on_its_own_site_only(cloud, tmp_path):
    _, _, up, key = cloud
    url = up.outputs["dashboard_url"].value
    assert url == f"http://{NODES['controller']}/"
    login = requests.get(url, timeout=30)  # redirected to the login page
    assert login.status_code == 200 and 'name="password"' in login.text, (login.status_code, login.url)
    # Not on Keystone's or Placement's virtual hosts, and nothing else of the dashboard's on the web server.
    for port in (5000, 8778):  # Keystone: 404; Placement asks for a token first: 401
        other = requests.get(f"http://{NODES['controller']}:{port}/auth/login/", timeout=30)
        assert other.status_code in (401, 404) and 'name="password"' not in other.text, (port, other.status_code)
    assert on("controller", key, "ls /etc/apache2/conf-enabled | grep -c dashboard || true") == "0"
    # Its own daemons (mod_wsgi daemon mode, not embedded in Apache's workers).
    assert on("controller", key, "pgrep -c -f '^[(]wsgi:horizon'") == "2"
    # Glance's metadata definitions catalog is loaded (the dashboard's metadata editors read it).
    conn = connect(up, tmp_path)
    assert len(list(conn.image.metadef_namespaces())) > 10


def test_a_browser_signs_in_sees_the_labs_server_image_and_networks_and_signs_out(cloud, tmp_path):
    """Headless Chromium at dashboard_url: a wrong password is refused with no session; the admin signs in, reaches
    the overview, finds a server, the guest image and the lab's networks on their pages, and signs out."""
    _, _, up, _ = cloud
    url = up.outputs["dashboard_url"].value
    password = yaml.safe_load(up.outputs["clouds_yaml"].value)["clouds"]["admin"]["auth"]["password"]
    conn = connect(up, tmp_path)
    server = conn.compute.create_server(
        name="browser-test", image_id=conn.image.find_image("openstack-deploy-guest", ignore_missing=False).id,
        flavor_id=conn.compute.find_flavor("m1.tiny", ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network("selfservice", ignore_missing=False).id}])
    try:
        conn.compute.wait_for_server(server, wait=300)
        with browser.chromium() as session:
            browser.sign_in(session, url, "admin", password + "-wrong")
            assert browser.shows(session, "Invalid credentials"), session.page_source[-2000:]
            browser.screenshot(session, "wrong-password")
            session.get(f"{url}project/")
            assert "/auth/login/" in session.current_url  # no session: back to the login form
            browser.screenshot(session, "login")

            browser.sign_in(session, url, "admin", password)
            assert browser.shows(session, "Limit Summary"), session.current_url
            assert "/auth/login/" not in session.current_url
            browser.screenshot(session, "overview")
            for path, names in (("project/instances/", ["browser-test"]), ("project/images/", ["openstack-deploy-guest"]),
                                ("admin/networks/", ["provider", "selfservice"])):
                session.get(url + path)
                for name in names:
                    assert browser.shows(session, name), (path, name)
                browser.screenshot(session, path.strip("/").replace("/", "-"))

            session.get(f"{url}auth/logout/")
            session.get(f"{url}project/")
            assert "/auth/login/" in session.current_url
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=120)


def test_deleted_networks_a_router_and_a_flavor_are_drift_and_up_refresh_makes_them_again(cloud):
    s, _, _, key = cloud
    on("controller", key, f"{ADMIN} router remove subnet router selfservice-v4 && {ADMIN} router delete router && "
                          f"{ADMIN} network delete selfservice && {ADMIN} flavor delete m1.tiny")
    drift = s.preview(refresh=True)
    assert drift.change_summary.get("create") == 5, drift.change_summary  # router, its interface, network, subnet, flavor
    s.up(refresh=True)
    assert on("controller", key, f"{ADMIN} router show router -f value -c status") == "ACTIVE"
    assert "m1.tiny" in on("controller", key, f"{ADMIN} flavor list -f value -c Name").split()
    s.preview(refresh=True, expect_no_changes=True)


def test_no_compute_host_holds_database_credentials(cloud):
    _, _, _, key = cloud
    conf = on("compute1", key, "cat /etc/nova/nova.conf")
    assert "[database]" not in conf and "[api_database]" not in conf and "mysql" not in conf
    assert on("compute1", key, "stat -c '%a %U %G' /etc/nova/nova.conf") == "640 root nova"
    conf = on("compute1", key, "cat /etc/neutron/neutron.conf")
    assert "[database]" not in conf and "mysql" not in conf and "keystone_authtoken" not in conf


# Units the packages enable that are not running after a deploy, and rightly so: they do their work at boot
# and exit, or exit at once by design (the console proxies not chosen in /etc/default/nova-consoleproxy).
# (libvirt-guests is masked by the deploy: Nova decides what runs after a host boots.)
NOT_RUNNING_BY_DESIGN = {  # (Debian 13: sshd-keygen runs only at a host's first boot)
    "controller": {"e2scrub_reap", "systemd-pstore", "open-iscsi", "nova-serialproxy", "nova-spicehtml5proxy",
                   "sshd-keygen"},
    "compute1": {"e2scrub_reap", "systemd-pstore", "open-iscsi", "sshd-keygen"},
}
SOCKET_STARTED = {"virtlogd"}  # runs from a guest's first log on (the servers test boots guests), not before


def test_what_a_reboot_would_start_is_what_runs_now(cloud):
    """Packages enable their units while policy-rc.d keeps them stopped: every one the deploy does not start
    itself would first run at the next boot, a cloud other than the one tested."""
    _, _, _, key = cloud
    for node, expected in NOT_RUNNING_BY_DESIGN.items():
        enabled = on(node, key, "systemctl list-unit-files --type=service --state=enabled --no-legend --plain "
                                "| awk '{print $1}' | grep -v '@' | sed 's/[.]service$//'").split()
        states = on(node, key, f"systemctl is-active {' '.join(enabled)} || true").split()  # a line per unit
        inactive = {u for u, state in zip(enabled, states, strict=True) if state != "active"}
        assert inactive - SOCKET_STARTED == expected, (node, inactive)


def test_a_second_up_changes_nothing(cloud):
    s, _, _, _ = cloud
    again = s.up()
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes


def test_a_dropped_grant_is_drift_and_up_refresh_puts_it_back(cloud):
    s, _, _, key = cloud
    on("controller", key, "mariadb -e \"REVOKE ALL PRIVILEGES ON keystone.* FROM 'keystone'@'%'\"")
    drift = s.preview(refresh=True, diff=True)
    assert drift.change_summary.get("update") == 1, drift.change_summary
    assert "keystone-database" in drift.stdout
    s.up(refresh=True)
    assert "ALL PRIVILEGES ON `keystone`.*" in on("controller", key, "mariadb -e \"SHOW GRANTS FOR 'keystone'@'%'\"")
    s.preview(refresh=True, expect_no_changes=True)


SERVICES = {  # node: units whose restarts are watched
    "controller": ("nova-api", "nova-api-metadata", "nova-scheduler", "nova-conductor", "nova-novncproxy",
                   "apache2", "glance-api", "mariadb", "rabbitmq-server", "memcached", "neutron-api",
                   "neutron-rpc-server", "neutron-periodic-workers", "neutron-dhcp-agent", "neutron-l3-agent",
                   "neutron-metadata-agent", "neutron-openvswitch-agent", "openvswitch-switch"),
    "compute1": ("nova-compute", "libvirtd", "neutron-openvswitch-agent", "openvswitch-switch"),
}


def invocations(key) -> dict[str, str]:
    """Each watched unit's InvocationID: it changes exactly when the unit is (re)started."""
    return {
        unit: on(node, key, f"systemctl show -p InvocationID --value {unit}")
        for node, units in SERVICES.items() for unit in units
    }


def test_one_nova_option_previews_and_restarts_only_novas_services(cloud):
    s, _, _, key = cloud
    set_config(s, "openstack-deploy:overrides", {"nova": {"DEFAULT": {"debug": True}}})
    changed = []

    def record(event):
        step = event.resource_pre_event and event.resource_pre_event.metadata
        # Resources only: the engine's default provider shows as updated whenever the stack config changes.
        if step and step.op not in ("same", "read") and not step.type.startswith("pulumi:providers:"):
            changed.append(step.urn.split("::")[-1])

    s.preview(on_event=record)
    assert sorted(set(changed)) == [
        "nova-compute-compute1-config", "nova-compute-compute1-service", "nova-controller-api",
        "nova-controller-conductor", "nova-controller-config", "nova-controller-metadata-api",
        "nova-controller-novncproxy", "nova-controller-scheduler",
    ], changed

    before = invocations(key)
    s.up()
    after = invocations(key)
    restarted = sorted(unit for unit in before if before[unit] != after[unit])
    assert restarted == ["nova-api", "nova-api-metadata", "nova-compute", "nova-conductor", "nova-novncproxy",
                         "nova-scheduler"]
    assert "debug = true" in on("compute1", key, "cat /etc/nova/nova.conf")


def wsgi_daemons(key, group: str) -> set[str]:
    return set(on("controller", key, f"pgrep -f '^[(]wsgi:{group}'").split())


def test_a_dashboard_setting_restarts_only_the_dashboards_daemons_while_keystone_answers(cloud):
    s, _, up, key = cloud
    overrides = json.loads(s.get_config("openstack-deploy:overrides").value)
    set_config(s, "openstack-deploy:overrides", {**overrides, "horizon": {"local_settings": {"SITE_BRANDING": "Lab cloud"}}})
    changed = set()
    s.preview(on_event=steps(changed))
    assert changed == {("update", "horizon-controller-settings"), ("update", "horizon-controller-static"),
                       ("update", "horizon-controller-wsgi-daemons")}, changed

    before = invocations(key), wsgi_daemons(key, "keystone"), wsgi_daemons(key, "horizon")
    password = yaml.safe_load(up.outputs["clouds_yaml"].value)["clouds"]["admin"]["auth"]["password"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": password}}}}}
    answers: list[int] = []
    done = threading.Event()

    def sign_in_again_and_again():
        while not done.is_set():
            try:
                answers.append(requests.post(up.outputs["auth_url"].value + "auth/tokens", json=body, timeout=10).status_code)
            except requests.RequestException:
                answers.append(0)

    signer = threading.Thread(target=sign_in_again_and_again)
    signer.start()
    try:
        s.up()
    finally:
        done.set()
        signer.join()
    after = invocations(key), wsgi_daemons(key, "keystone"), wsgi_daemons(key, "horizon")
    assert answers and set(answers) == {201}, sorted(set(answers))  # Keystone answered every sign-in
    assert after[0] == before[0]  # no unit restarted, Apache included
    assert after[1] == before[1]  # Keystone's own daemons untouched
    assert not after[2] & before[2]  # the dashboard's daemons are new
    assert "Lab cloud" in requests.get(up.outputs["dashboard_url"].value, timeout=30).text


def test_nothing_listens_on_a_wildcard_address_but_sshd(cloud):
    _, _, _, key = cloud
    for node in NODES:
        sockets = on(node, key, "ss -Hlntup").splitlines()
        wild = [line for line in sockets
                if line.split()[4].rsplit(":", 1)[0] in ("0.0.0.0", "*", "[::]", "[::]%lo", "::")
                and 'users:(("sshd"' not in line]
        assert wild == [], (node, wild)


# ------------------------------------------------------------------------------------------------- recovery

def end_state(s, node: str, key: str) -> set[str]:
    """What a compute host ends up with, its own name and address taken out: every file the program wrote (a hash
    of its content), the units enabled, masked and running, the packages installed and their versions."""
    address = {**NODES, **SPARE}[node]
    paths = sorted(r["outputs"]["path"] for r in s.export_stack().deployment["resources"]
                   if r["type"].endswith("/remote:File") and plaintext(r["outputs"]["connection"])["host"] == address)
    assert paths, node
    pattern = address.replace(".", "[.]")
    return set(on(node, key, (
        f"for f in {' '.join(paths)}; do echo \"file $f $(sed -e 's/{pattern}/ADDRESS/g' -e 's/\\b{node}\\b/HOST/g' "
        "$f | sha256sum | cut -c1-16)\"; done; "
        "systemctl list-unit-files --no-legend --plain --state=enabled,masked | awk '{print \"unit \" $1 \" \" $2}'; "
        "systemctl list-units --no-legend --plain --type=service --state=running | awk '{print \"running \" $1}'; "
        "dpkg-query -W -f='package ${Package} ${Version} ${db:Status-Status}\\n'"
    )).splitlines())


def kill_when_dpkg_unpacks(node: str, seconds: float) -> threading.Thread:
    """A thread that kills every process of the node (its init first: the container stops, its disk stays) once
    apt's dpkg is unpacking a package there: a host that loses power in the middle of an install."""
    netns = f"osd-{STACK}-{node}"

    def unpacking(pid: str) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return argv[0].endswith(b"dpkg") and b"--unpack" in argv

    def watch():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
            if any(unpacking(pid) for pid in pids):
                subprocess.run(["kill", "-9", *sorted(pids, key=int)], check=False)
                watch.killed = True
                return
            time.sleep(0.2)
    watch.killed = False
    thread = threading.Thread(target=watch, daemon=True)
    thread.killed = lambda: watch.killed
    thread.start()
    return thread


def test_a_host_killed_while_it_installs_is_named_and_the_next_up_gives_it_the_same_end_state(cloud):
    """compute2 is added (scale out: its preview shows its own steps and, on the other hosts, only what names every
    host) and its node dies while dpkg unpacks its packages: the run stops naming host and step; the next
    `up --refresh` boots the node again, mends dpkg and ends with compute2 in the cloud as compute1 is (deployed in
    one uninterrupted run): same files, units, packages. Between them the two runs did what the preview showed,
    and the node's boot. compute2 stays in the stack (the first parity row removes it)."""
    s, _, _, key = cloud
    _set_spare(s, present=True)
    previewed, performed = set(), set()
    s.preview(on_event=steps(previewed))
    shown = {name for _, name in previewed}
    assert SHOWN["a compute host added"] <= shown, sorted(SHOWN["a compute host added"] - shown)
    assert {n for n in shown if "compute2" not in n and not n.endswith(NAMES_EVERY_HOST)} == set(), sorted(shown)
    watcher = kill_when_dpkg_unpacks("compute2", seconds=600)
    with pytest.raises(auto.CommandError) as failed:
        s.up(on_event=steps(performed))
    watcher.join(timeout=5)
    assert watcher.killed(), "compute2's dpkg never unpacked: the run failed before it"
    message = str(failed.value)
    assert "cloud-compute2-packages" in message and f"compute2 (root@{SPARE['compute2']}:22):" in message, message
    assert s.export_stack().deployment.get("pending_operations") in (None, [])

    s.up(refresh=True, on_event=steps(performed))
    done = {name for _, name in performed}
    assert shown <= done and {n for n in done - shown if not n.startswith("lab-compute2")} == set(), \
        (sorted(shown - done), sorted(done - shown))
    assert on("compute2", key, "dpkg --audit") == ""
    assert _in_the_cloud(key) == {"compute service", "hypervisor", "resource provider", "network agent",
                                  "host mapping"}
    interrupted, uninterrupted = end_state(s, "compute2", key), end_state(s, "compute1", key)
    assert {line for line in uninterrupted ^ interrupted if not line.startswith("running virtlogd")} == set()
    s.preview(refresh=True, expect_no_changes=True)


# --------------------------------------------------------------------------------------------------- parity
# Each row changes the cloud by hand; `preview --refresh` must show exactly the steps `up --refresh` then
# performs, and the services the preview restarts must be the ones that restart; afterwards nothing is left.

def _edit_each_config(s, key):
    on("controller", key, "echo '# edited by hand' >> /etc/glance/glance-api.conf")
    on("compute1", key, "echo '# edited by hand' >> /etc/libvirt/qemu.conf")


def _delete_an_endpoint(s, key):
    endpoint = on("controller", key, f"{ADMIN} endpoint list --service placement --interface internal -f value -c ID")
    on("controller", key, f"{ADMIN} endpoint delete {endpoint}")


def _kill_a_node(s, key):
    """The compute node's container killed (its disk stays): up --refresh boots it again."""
    init = subprocess.run(["ip", "netns", "pids", "osd-labtest-compute1"], capture_output=True, text=True).stdout.split()
    subprocess.run(["kill", "-9", *init], check=False)


def _service_override(s, key):
    set_config(s, "openstack-deploy:overrides", {"glance": {"DEFAULT": {"debug": True}}})


def _host_override(s, key):
    hosts = json.loads(s.get_config("openstack-deploy:hosts").value)
    hosts = [dict(h, overrides={"nova": {"DEFAULT": {"debug": True}}}) if h["name"] == "compute1" else h for h in hosts]
    set_config(s, "openstack-deploy:hosts", hosts)


def _rotate(name: str, value: str):
    def rotate(s, key):
        s.set_config(f"openstack-deploy:passwords.{name}", auto.ConfigValue(value=value, secret=True), path=True)
    return rotate


def _set_spare(s, present: bool) -> bool:
    """The spare compute host in or out of the stack's hosts; whether that changed them."""
    hosts = json.loads(s.get_config("openstack-deploy:hosts").value)
    kept = [h for h in hosts if h["name"] not in SPARE]
    spare = [{"name": name, "address": address, "roles": ["compute"]} for name, address in SPARE.items()]
    set_config(s, "openstack-deploy:hosts", kept + (spare if present else []))
    return len(hosts) != len(kept) + (len(spare) if present else 0)


def _remove_a_compute_host(s, key):
    if _set_spare(s, present=True):  # (this row run alone: the host it removes is added first)
        s.up()
    _set_spare(s, present=False)


DRIFT = {  # each kind of change made by hand or by the operator
    "a unit disabled": lambda s, key: on("controller", key, "systemctl disable -q memcached"),
    "a config file edited on each host": _edit_each_config,
    "a service stopped": lambda s, key: on("controller", key, "systemctl stop nova-scheduler"),
    "a masked unit unmasked": lambda s, key: on("compute1", key, "systemctl unmask -q libvirt-guests"),
    "a database grant revoked": lambda s, key: on(  # (Placement's: no refresh reads through its API; an API the
        # refresh reads, Glance's, may answer 500 until the grant is back, on a database connection opened since)
        "controller", key, "mariadb -e \"REVOKE ALL PRIVILEGES ON placement.* FROM 'placement'@'%'\""),
    "a Keystone endpoint deleted": _delete_an_endpoint,
    "a package removed": lambda s, key: on(
        "controller", key, "DEBIAN_FRONTEND=noninteractive apt-get -q -y remove nova-consoleproxy >/dev/null"),
}
CHANGES = {
    "a node's container killed": _kill_a_node,
    "a per-service override changed": _service_override,
    "a per-host override changed": _host_override,
    "a service password rotated": _rotate("placement_user", "rotated-4Xq9bLw2"),
    "the RabbitMQ password rotated": _rotate("rabbitmq", "rotated-Mq7$'x"),
    "the Nova database password rotated": _rotate("nova_db", "rotated-Db5$x'y"),
    "a compute host removed": _remove_a_compute_host,
}
REBOOTED = {"a node's container killed": "compute1"}  # every unit of that node starts anew
# What each change must show in the preview (and then do), at least: so that several share one row (each row is a
# preview --refresh, an up --refresh and another preview --refresh of the whole cloud). (A host added: the recovery
# test's.)
SHOWN = {
    "a unit disabled": {"memcached-controller-service"},
    "a config file edited on each host": {"glance-controller-config", "nova-compute-compute1-qemu-conf"},
    "a service stopped": {"nova-controller-scheduler"},
    "a masked unit unmasked": {"nova-compute-compute1-libvirt-guests-off"},
    "a database grant revoked": {"placement-database"},
    "a Keystone endpoint deleted": {"placement-identity-internal-endpoint"},
    "a package removed": {"cloud-controller-packages"},
    "a per-service override changed": {"glance-controller-config", "glance-controller-api"},
    "a per-host override changed": {"nova-compute-compute1-config", "nova-compute-compute1-service"},
    "a service password rotated": {"placement-identity-user", "placement-controller-config",
                                   "placement-controller-wsgi-daemons"},
    "the RabbitMQ password rotated": {"rabbitmq-controller-user", "nova-controller-config", "nova-compute-compute1-config",
                                      "neutron-compute1-config", "nova-compute-compute1-service"},
    "the Nova database password rotated": {"nova-database", "nova-controller-config", "nova-controller-conductor"},
    "a compute host added": {"cloud-compute2-packages", "nova-compute-compute2-service"},
    "a compute host removed": {"cloud-compute2-packages", "nova-compute-compute2-service",
                               "nova-compute-compute2-records", "neutron-compute2-records"},
}
def _in_the_cloud(key) -> set[str]:
    """Where compute2 is in the cloud's records: its compute service, hypervisor, resource provider, network agent,
    host mapping."""
    found = {
        "compute service": on("controller", key, f"{ADMIN} compute service list --host compute2 -f value -c ID"),
        "hypervisor": on("controller", key, f"{ADMIN} hypervisor list -f value -c 'Hypervisor Hostname' | grep -x compute2 || true"),
        "resource provider": on("controller", key, f"{ADMIN} resource provider list --name compute2 -f value -c uuid"),
        "network agent": on("controller", key, f"{ADMIN} network agent list --host compute2 -f value -c ID"),
        "host mapping": on("controller", key, "runuser -u nova -- nova-manage cell_v2 list_hosts | grep -w compute2 || true"),
    }
    return {what for what, out in found.items() if out}


# What the cloud says after the row's up, where a row must leave more than its steps.
AFTERWARDS = {"a compute host removed": lambda key: _in_the_cloud(key) == set()}
# Rows about one host: nothing changes on the other hosts but what names every host (each one's /etc/hosts block
# and name check) and cell1's discover step.
ABOUT = {"a compute host removed": "compute2"}
NAMES_EVERY_HOST = ("-etc-hosts", "-name-check", "nova-controller-discover-hosts")
CONFIG_CHANGES = ["a per-service override changed", "a per-host override changed", "a service password rotated",
                  "the RabbitMQ password rotated", "the Nova database password rotated"]
# A host removed (the recovery test added it: the adding's preview is checked there, so the other rows run on the
# two hosts), every kind of drift at once, the node killed, the config changes at once.
ROWS = [["a compute host removed"], list(DRIFT), ["a node's container killed"], CONFIG_CHANGES]


def steps(record, events=None):
    """An on_event callback that collects (op, resource name) of every step that changes something (and every
    event in `events`, if given)."""
    def collect(event):
        if events is not None:
            events.append(event)
        meta = event.resource_pre_event and event.resource_pre_event.metadata
        if meta and meta.op not in ("same", "read", "refresh") and not meta.type.startswith("pulumi:providers:"):
            record.add((meta.op, meta.urn.split("::")[-1]))
    return collect


def service_units(s) -> dict[str, tuple[str, str]]:
    """Every service step's name -> (node, unit), from the state; a step that only reloads its unit (a second
    site on Apache) does not restart it, and is left out."""
    found = {}
    for r in s.export_stack().deployment["resources"]:
        outs = r.get("outputs") or {}
        create = plaintext(outs.get("create")) or ""
        if r["type"].endswith("/remote:Command") and "systemctl enable -q " in create and "reload-or-" not in create:
            conn = plaintext(outs["connection"])
            unit = create.split("systemctl enable -q ", 1)[1].split()[0]
            if conn["host"] in ADDRESSES:  # (a host added by a row is not watched)
                found[r["urn"].split("::")[-1]] = (ADDRESSES[conn["host"]], unit)
    return found


def invocation_ids(key, units) -> dict:
    """(node, unit) -> the unit's InvocationID (new at each start), one SSH call per node."""
    found = {}
    for node in sorted({node for node, _ in units}):
        names = sorted(unit for n, unit in units if n == node)
        shown = on(node, key, "for u in " + " ".join(names) + "; do echo \"$u $(systemctl show -p InvocationID --value $u)\"; done")
        found.update({(node, line.split(" ", 1)[0]): line.split(" ", 1)[1] if " " in line else ""
                      for line in shown.splitlines()})
    return found


@pytest.mark.parametrize("row", ROWS, ids=lambda r: " + ".join(r) if len(r) > 1 else r[0])
def test_preview_refresh_shows_exactly_what_up_refresh_does(cloud, row):
    s, _, _, key = cloud
    units = service_units(s)
    for name in row:
        {**DRIFT, **CHANGES}[name](s, key)
    previewed, performed, events = set(), set(), []
    preview = s.preview(refresh=True, on_event=steps(previewed, events))
    assert previewed, f"{row}: the preview shows no change ({preview.change_summary})"
    shown = {name for _, name in previewed}
    for name in row:
        assert SHOWN.get(name, set()) <= shown, (name, sorted(SHOWN[name] - shown))
        if name in ABOUT:
            assert {n for n in shown if ABOUT[name] not in n and not n.endswith(NAMES_EVERY_HOST)} == set(), name
    # The pull-request report of that preview names every changed step's host and holds no secret in any form.
    hosts = [h["name"] for h in json.loads(s.get_config("openstack-deploy:hosts").value)]
    text = preview_report.render(STACK, preview_report.steps_from(events), hosts, refresh=True)
    os.makedirs(browser.ARTIFACTS, exist_ok=True)
    with open(os.path.join(browser.ARTIFACTS, f"preview-report-{'+'.join(row)[:60]}.md".replace(" ", "-")), "w") as f:
        f.write(text)
    for secret in stack_secrets(s):
        assert not any(form in text for form in render.written_forms(secret)), row
        assert not any(line in text for line in secret.splitlines() if len(line) > 16), row  # (a key's lines)
    assert "### Drift found by the refresh" in text or not set(row) & set(DRIFT)
    if "a per-service override changed" in row:
        assert "+debug = true" in text  # the masked diff of glance-api.conf
    rebooted = {REBOOTED[name] for name in row if name in REBOOTED}  # every unit there starts anew
    watched = {u for u in units.values() if u[0] not in rebooted}
    before = invocation_ids(key, watched)
    s.up(refresh=True, on_event=steps(performed))
    after = invocation_ids(key, watched)
    assert performed == previewed, (sorted(previewed - performed), sorted(performed - previewed))
    for name in row:
        assert AFTERWARDS.get(name, lambda key: True)(key), (name, _in_the_cloud(key))
    restarts = {units[name] for op, name in previewed if name in units} & watched
    assert {u for u in watched if before[u] != after[u]} == restarts
    s.preview(refresh=True, expect_no_changes=True)


def test_after_the_rotations_the_cloud_signs_in_lists_images_and_boots_a_server(cloud, tmp_path):
    """The parity rows rotated a service password, RabbitMQ's and Nova's database password (cell mappings are
    templates filled from nova.conf: nothing stored with the old ones)."""
    s, _, up, key = cloud
    stored = on("controller", key, "mariadb -N -B -e 'SELECT database_connection FROM nova_api.cell_mappings'")
    assert stored.split() == ["{scheme}://{username}:{password}@{hostname}/nova_cell0",
                              "{scheme}://{username}:{password}@{hostname}/nova"]
    conn = connect(up, tmp_path)
    assert conn.image.find_image("openstack-deploy-guest", ignore_missing=False)
    server = conn.compute.create_server(
        name="after-rotation", image_id=conn.image.find_image("openstack-deploy-guest").id,
        flavor_id=conn.compute.find_flavor("m1.tiny", ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network("selfservice", ignore_missing=False).id}])
    try:
        assert conn.compute.wait_for_server(server, wait=300).status == "ACTIVE"
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=120)


def test_a_host_that_does_not_answer_is_named_and_up_fails_naming_it(cloud):
    s, _, _, key = cloud
    netns = "osd-labtest-compute1"
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        previewed = set()
        preview = s.preview(refresh=True, diff=True, on_event=steps(previewed))
        assert previewed == {("update", "cloud-compute1-ssh")}, previewed  # one line for the host, with why
        assert "no answer in 10s" in preview.stdout and "were not read" in preview.stdout
        with pytest.raises(auto.CommandError) as failed:
            s.up(refresh=True)
        assert f"compute1 (root@{NODES['compute1']}:22): cannot connect" in str(failed.value)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    s.up(refresh=True)
    s.preview(refresh=True, expect_no_changes=True)


def test_a_changed_host_key_stops_the_run_before_anything_is_sent(cloud):
    s, _, _, key = cloud
    on("compute1", key, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -A && systemctl restart ssh")
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", NODES["compute1"]], capture_output=True, text=True,
                          check=True)
    offered = scan.stdout.split(None, 1)[1].strip()  # what the operator checks out of band, then pins
    with pytest.raises(auto.CommandError) as failed:
        s.up(refresh=True)
    message = str(failed.value)
    assert f"compute1 (root@{NODES['compute1']}:22): offers SSH host key" in message and "hostKey" in message
    hosts = [dict(h, hostKey=offered) if h["name"] == "compute1" else h
             for h in json.loads(s.get_config("openstack-deploy:hosts").value)]
    set_config(s, "openstack-deploy:hosts", hosts)  # the operator accepts the new key
    s.up(refresh=True)
    s.preview(refresh=True, expect_no_changes=True)


def test_after_a_machine_restart_up_refresh_brings_the_cloud_back(cloud, env, tmp_path):
    """Every node down at once, as a restart of this machine leaves them (their disks stay): the two runs of
    `scripts/lab up --refresh` (the nodes, then everything: Keystone's entities are read through Keystone, which
    runs on a node) bring the whole cloud back, and nothing else is left to change."""
    s, _, up, key = cloud
    hosts = [h["name"] for h in json.loads(s.get_config("openstack-deploy:hosts").value)]
    on("controller", key, "touch /root/survives-restart")
    simulate_machine_restart(hosts, env)

    assert s.up(refresh=True, target=LAB).summary.result == "succeeded"
    s.up(refresh=True)
    for node in hosts:
        assert system_state(node, key) == "running", node
    on("controller", key, "test -e /root/survives-restart")  # the node's disk is the same
    conn = connect(up, tmp_path)  # and its services answer from here
    assert conn.image.find_image("openstack-deploy-guest", ignore_missing=False)
    assert {n.name for n in conn.network.networks()} >= {"provider", "selfservice"}
    s.preview(refresh=True, expect_no_changes=True)


# The next release of this program, as a set of edits to its source: one change of every kind of step.
NEXT_RELEASE = {
    "components/profiles.py": [  # a package set: one more package on compute hosts
        ('"nova_compute": ("nova-compute", "nova-compute-kvm", "curl"),',
         '"nova_compute": ("nova-compute", "nova-compute-kvm", "curl", "jq"),')],
    "components/keystone.py": [  # a file moves; a one-off step (key setup) has a new command
        ('ADMIN_OPENRC = "/root/admin-openrc"', 'ADMIN_OPENRC = "/root/admin-openrc.sh"'),
        ('create=f"keystone-manage fernet_setup {keys} && keystone-manage credential_setup {keys}"',
         'create=f"keystone-manage fernet_setup {keys}; keystone-manage credential_setup {keys}"')],
    "components/memcached.py": [  # a service: a new command (it waits for its port now)
        ('profile.service("memcached"), self)',
         'profile.service("memcached"), self, ready=f"timeout 30 sh -c \'until ss -Hltn | grep -q {host.address}:11211; '
         'do sleep 1; done\'")')],
    "components/blocks/steps.py": [  # a masked unit: a new command (as libvirt-guests went from disabled to masked)
        ('create=f"systemctl disable -q --now {u} 2>/dev/null || true; systemctl mask -q {u}"',
         'create=f"systemctl stop {u} 2>/dev/null || true; systemctl disable -q {u} 2>/dev/null || true; '
         'systemctl mask -q {u}"')],
    "components/glance.py": [  # a Keystone entity: another description
        ('"OpenStack Image", PORT', '"OpenStack Image service", PORT')],
    "components/providers/mariadb.py": [  # a database grant: no more 'localhost' accounts
        ('hosts: tuple[str, ...] = ("localhost", "%")', 'hosts: tuple[str, ...] = ("%",)')],
}


def test_the_next_release_changes_every_kind_of_step_in_place_or_delete_first(cloud):
    s, _, _, key = cloud
    work = s.workspace.work_dir
    for path, edits in NEXT_RELEASE.items():
        with open(f"{work}/{path}") as f:
            text = f.read()
        for old, new in edits:
            assert old in text, (path, old)  # the release's code moved: update this table
            text = text.replace(old, new)
        with open(f"{work}/{path}", "w") as f:
            f.write(text)
    performed = set()
    s.up(on_event=steps(performed))
    assert ("delete", "cloud-compute1-packages") not in performed  # changed in place: nothing purged
    assert s.export_stack().deployment.get("pending_operations") in (None, [])

    assert on("compute1", key, "dpkg-query -W -f='${db:Status-Status}' jq") == "installed"
    on("compute1", key, "systemctl is-active -q nova-compute libvirtd")
    on("controller", key, "test ! -e /root/admin-openrc && test -s /root/admin-openrc.sh")
    on("controller", key, "systemctl is-active -q memcached")
    for node, unit in (("compute1", "libvirt-guests"), ("controller", "keystone"), ("controller", "placement-api")):
        assert on(node, key, f"systemctl is-enabled {unit} || true") == "masked", (node, unit)
    on("controller", key, "test -s /etc/keystone/fernet-keys/0 && test -s /etc/keystone/credential-keys/0")
    assert on("controller", key, ". /root/admin-openrc.sh && openstack token issue -f value -c id")
    assert on("controller", key, ". /root/admin-openrc.sh && openstack service show image -f value -c description") \
        == "OpenStack Image service"
    assert on("controller", key, "mariadb -N -e \"SELECT COUNT(*) FROM mysql.user WHERE Host = 'localhost' AND User "
                                 "IN ('keystone', 'glance', 'placement', 'nova')\"") == "0"
    assert "image" in on("controller", key, ". /root/admin-openrc.sh && openstack catalog list -f value -c Type")
    on("controller", key, ". /root/admin-openrc.sh && openstack image list >/dev/null")  # Glance reads its database

    again = s.up()
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    s.preview(refresh=True, expect_no_changes=True)
