"""The lab with the real engine: nodes come up, reach each other, come back after a kill, and leave nothing."""

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from components.providers import ssh
from components.providers.lab import netns_processes, node_init
from tests.integration.conftest import stack

STACK = "labtest"  # its own stack, bridge and subnet, so a developer's running lab is left alone
BRIDGE = "osdtest0"
NODES = {"controller": "10.67.0.10", "compute1": "10.67.0.11"}


@pytest.fixture
def lab(project):
    work, _ = project
    with open(work / "stacks" / "Pulumi.lab.yaml") as f:
        doc = yaml.safe_load(f)
    doc.pop("encryptionsalt", None)
    doc["config"]["openstack-deploy:managementCidr"] = "10.67.0.0/24"
    doc["config"]["openstack-deploy:lab"] = {"bridge": BRIDGE}
    doc["config"]["openstack-deploy:hosts"] = [
        {"name": "controller", "address": NODES["controller"], "roles": ["controller"]},
        {"name": "compute1", "address": NODES["compute1"], "roles": ["compute"]},
    ]
    with open(work / "stacks" / f"Pulumi.{STACK}.yaml", "w") as f:
        yaml.safe_dump(doc, f)
    s = stack(project, STACK)
    yield s
    s.destroy()  # whatever the test did, leave the machine clean
    assert leftovers() == []


def private_key(s) -> str:
    for r in s.export_stack().deployment["resources"]:
        if r["type"] == "pulumi-python:dynamic/secrets:SshKey":
            return plaintext(r["outputs"]["private_key"])
    raise AssertionError("no lab SSH key in state")


def plaintext(value):
    """A secret as `stack export --show-secrets` gives it: a signature object with its plaintext (JSON)."""
    return json.loads(value["plaintext"]) if isinstance(value, dict) else value


def assert_secrets_only_as_ciphertext(s) -> None:
    """The generated passwords, the lab key and the node connections are ciphertext in the backend's files
    (the Automation API's export shows them decrypted)."""
    secrets = [
        plaintext(r["outputs"].get("value") or r["outputs"].get("private_key"))
        for r in s.export_stack().deployment["resources"]
        if r["type"].startswith("pulumi-python:dynamic/secrets:")
    ]
    assert len(secrets) == 15 and all(secrets)
    backend = s.workspace.env_vars["PULUMI_BACKEND_URL"].removeprefix("file://")
    for folder, _, files in os.walk(backend):
        for name in files:
            with open(os.path.join(folder, name), errors="replace") as f:
                text = f.read()
            assert not any(secret in text for secret in secrets), name
            assert "PRIVATE KEY" not in text, name


def on(node: str, key: str, command: str) -> str:
    client = ssh.connect({"host": NODES[node], "private_key": key}, dial_timeout=30)
    try:
        result = ssh.run(client, command, timeout=60)
    finally:
        client.close()
    assert result.exit_status == 0, (node, command, result.stderr)
    return result.stdout.strip()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers() -> list[str]:
    """Everything of the test lab still on the machine (zombies awaiting their reaper excepted)."""
    found = []
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        found.append(f"bridge {BRIDGE}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"osd-{STACK}-")]
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    tags = {"osd" + hashlib.sha256(f"{STACK}/{n}".encode()).hexdigest()[:8] for n in NODES}
    found += [f"veth {link['ifname']}" for link in links if link["ifname"] in tags]
    with open("/proc/mounts") as f:
        found += [f"mount {line.split()[1]}" for line in f if f"/lab/stacks/{STACK}/" in line]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (f"machine=osd-{STACK}-" in cmd or f"/lab/stacks/{STACK}/" in cmd) and alive(int(pid)):
            found.append(f"process {pid} {cmd[:80]}")
    return found


def test_lab_up_nodes_run_and_reach_each_other_then_a_killed_node_comes_back(lab):
    up = lab.up()
    assert up.summary.result == "succeeded"
    assert up.outputs["hosts"].value == {
        "controller": {"address": NODES["controller"], "roles": ["controller"]},
        "compute1": {"address": NODES["compute1"], "roles": ["compute"]},
    }
    key = private_key(lab)
    for node, other in (("controller", "compute1"), ("compute1", "controller")):
        assert on(node, key, "systemctl is-system-running") == "running"
        assert on(node, key, "hostname") == node
        assert f"inet {NODES[node]}/24" in on(node, key, "ip -4 -o addr show dev eth0")
        on(node, key, f"ping -c 1 -W 2 {NODES[other]}")
        on(node, key, "apt-get update -qq")  # packages come through the lab's cache
    lab.preview(expect_no_changes=True)
    assert_secrets_only_as_ciphertext(lab)

    # Kill the compute node outright (its init, hence its whole PID namespace); a refresh sees it gone.
    init = node_init(f"osd-{STACK}-compute1")
    os.kill(init, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while node_init(f"osd-{STACK}-compute1") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node_init(f"osd-{STACK}-compute1") is None
    up = lab.up(refresh=True)
    assert up.summary.resource_changes.get("create") == 1  # only the node's boot
    assert node_init(f"osd-{STACK}-compute1") not in (None, init)
    assert on("compute1", key, "systemctl is-system-running") == "running"
    on("compute1", key, f"ping -c 1 -W 2 {NODES['controller']}")


def test_three_up_destroy_cycles_are_clean(lab):
    for cycle in range(3):
        assert lab.up().summary.result == "succeeded", cycle
        assert netns_processes(f"osd-{STACK}-controller"), cycle
        lab.destroy()
        assert leftovers() == [], cycle


def simulate_machine_restart(lab_state_dir: str) -> None:
    """What a restart of this machine takes away: every process, namespace, link and mount of the lab
    (the node disks, base image and package cache on disk survive)."""
    for node in NODES:
        for pid in netns_processes(f"osd-{STACK}-{node}"):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", f"/lab/stacks/{STACK}/package-cache"], check=False)
    subprocess.run(["pkill", "-KILL", "-f", f"machine=osd-{STACK}-"], check=False)
    for node in NODES:
        subprocess.run(["ip", "netns", "del", f"osd-{STACK}-{node}"], check=False)
        subprocess.run(["umount", "-l", f"{lab_state_dir}/nodes/{node}/root"], check=False)
    subprocess.run(["ip", "link", "del", BRIDGE], check=False)
    deadline = time.monotonic() + 30
    while [x for x in leftovers() if not x.startswith(("veth", "process"))] and time.monotonic() < deadline:
        time.sleep(0.2)


def test_after_a_machine_restart_up_refresh_brings_the_lab_back(lab, env):
    lab.up()
    key = private_key(lab)
    on("controller", key, "touch /root/survives-restart")
    lab_state_dir = os.path.join(env.get("OSD_CACHE"), "lab", "stacks", STACK)
    simulate_machine_restart(lab_state_dir)

    up = lab.up(refresh=True)
    assert up.summary.result == "succeeded"
    for node, other in (("controller", "compute1"), ("compute1", "controller")):
        assert on(node, key, "systemctl is-system-running") == "running"
        on(node, key, f"ping -c 1 -W 2 {NODES[other]}")
    on("controller", key, "test -e /root/survives-restart")  # the node's disk is the same
    lab.preview(expect_no_changes=True)


def test_etc_hosts_drift_is_repaired_and_a_wrong_mapping_stops_the_run_naming_it(lab):
    lab.up()
    key = private_key(lab)
    assert on("compute1", key, "getent ahostsv4 controller | awk 'NR==1{print $1}'") == NODES["controller"]

    # A hand edit of the managed block is drift, and up --refresh puts it back.
    on("controller", key, "sed -i '/ compute1$/d' /etc/hosts")
    preview = lab.preview(refresh=True)
    assert preview.change_summary.get("create", 0) >= 1
    lab.up(refresh=True)
    assert on("controller", key, "getent ahostsv4 compute1 | awk 'NR==1{print $1}'") == NODES["compute1"]

    # The seeds' classic failure: a name mapped to another address ahead of ours.
    on("compute1", key, "sed -i '1i 10.67.0.99 controller' /etc/hosts")
    with pytest.raises(Exception) as failed:
        lab.up(refresh=True)
    assert (
        f"host compute1 maps controller to {NODES['controller']} 10.67.0.99 (expected {NODES['controller']}, its management address)"
        in str(failed.value)
    )
