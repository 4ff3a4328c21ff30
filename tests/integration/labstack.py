"""The test lab stack: its own stack name, bridge and subnet (a developer's running lab is left alone), and
helpers to reach its nodes and read its state."""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from typing import Optional

import pytest
import yaml
from pulumi import automation as auto

from components.config import PASSWORDS
from components.providers.lab import netns_processes
from components.providers import ssh
from tests.integration.conftest import stack

STACK = "labtest"  # its own stack, bridge and subnet, so a developer's running lab is left alone
BRIDGE = "osdtest0"
NODES = {"controller": "10.67.0.10", "compute1": "10.67.0.11"}
SPARE = {"compute2": "10.67.0.12"}  # a compute host that tests add and remove
ADMIN = ". /root/admin-openrc && openstack"  # the admin's CLI on the controller
# Neutron's agents as `network agent list` names them, by host: the network node's on the controller, the
# Open vSwitch agent on every host.
AGENTS = {("Open vSwitch agent", "controller"), ("DHCP agent", "controller"), ("L3 agent", "controller"),
          ("Metadata agent", "controller"), ("Open vSwitch agent", "compute1")}
PROVIDER_CIDR = "10.67.100.0/24"  # the provider network; its bridge (BRIDGE + "p") holds 10.67.100.1
# `target` globs: the lab itself and what every host gets before any package (passwords, nodes, SSH access,
# OS release check, /etc/hosts
# block, name check). Tests of the lab's own life cycle and of the building blocks target these only; the
# services have their own tests (test_cloud.py).
LAB = ["**lab-**", "**::lab", "**::cloud", "**cloud-passwords**", "**::cloud-release"]
HOST_PREP = LAB + ["**::cloud-controller", "**::cloud-compute1", "**-ssh", "**-os-release", "**-etc-hosts",
                   "**-name-check"]


@contextlib.contextmanager
def lab_stack(project, disposable: bool = True, release: Optional[str] = None, post_deploy: bool = False):
    """The lab stack for this test's project, destroyed afterwards whatever happened (the machine left clean).
    `disposable=False`: nodes that behave like an operator's hosts (every undo runs on destroy); `release`: another
    than the lab stack file's; `post_deploy`: with the stack file's postDeploy resources (flavor, image, networks...),
    which only tests that deploy the whole cloud in one untargeted run can have (a `--target`ed run of a new stack
    leaves their IDs empty)."""
    work, _ = project
    with open(work / "stacks" / "Pulumi.lab.yaml") as f:
        doc = yaml.safe_load(f)
    doc.pop("encryptionsalt", None)
    doc["config"]["openstack-deploy:managementCidr"] = "10.67.0.0/24"
    if "openstack-deploy:providerNetwork" in doc["config"]:  # (a program from before Neutron has none)
        doc["config"]["openstack-deploy:providerNetwork"] = {"cidr": PROVIDER_CIDR}
    if not post_deploy:
        doc["config"].pop("openstack-deploy:postDeploy", None)
    if release:
        doc["config"]["openstack-deploy:release"] = release
    doc["config"]["openstack-deploy:lab"] = {"bridge": BRIDGE, **({} if disposable else {"disposable": False})}
    doc["config"]["openstack-deploy:ssh"] = {"dialTimeout": 30}  # a host that is down fails a run in 30 s
    doc["config"]["openstack-deploy:hosts"] = [
        {"name": "controller", "address": NODES["controller"], "roles": ["controller"]},
        {"name": "compute1", "address": NODES["compute1"], "roles": ["compute"]},
    ]
    with open(work / "stacks" / f"Pulumi.{STACK}.yaml", "w") as f:
        yaml.safe_dump(doc, f)
    s = stack(project, STACK)
    try:
        yield s
    finally:
        s.destroy()
        assert leftovers() == []


@pytest.fixture
def lab(project):
    with lab_stack(project) as s:
        yield s


def set_config(s, key: str, value) -> None:
    """Sets a structured stack config value (as `pulumi config set --path`, from a Python value)."""
    s.set_config(key, auto.ConfigValue(value=json.dumps(value)), path=False)


def private_key(s) -> str:
    for r in s.export_stack().deployment["resources"]:  # (by name: the post-deploy's servers have a key of their own)
        if r["type"] == "pulumi-python:dynamic/secrets:SshKey" and r["urn"].endswith("::lab-ssh-key"):
            return plaintext(r["outputs"]["private_key"])
    raise AssertionError("no lab SSH key in state")


def plaintext(value):
    """A secret as `stack export --show-secrets` gives it: a signature object with its plaintext (JSON)."""
    return json.loads(value["plaintext"]) if isinstance(value, dict) else value


def stack_secrets(s) -> list[str]:
    """Every secret of the stack in plaintext: the generated passwords, the lab's SSH key, the config's secrets."""
    found = [plaintext(r["outputs"].get("value") or r["outputs"].get("private_key"))
             for r in s.export_stack().deployment["resources"] if r["type"].startswith("pulumi-python:dynamic/secrets:")]
    found += [v.value for v in s.get_all_config().values() if v.secret]
    return [secret for secret in found if secret]


def assert_secrets_only_as_ciphertext(s) -> None:
    """The generated passwords, the lab key and the node connections are ciphertext in the backend's files
    (the Automation API's export shows them decrypted)."""
    secrets = [
        plaintext(r["outputs"].get("value") or r["outputs"].get("private_key"))
        for r in s.export_stack().deployment["resources"]
        if r["type"].startswith("pulumi-python:dynamic/secrets:")
    ]
    assert len(secrets) == len(PASSWORDS) + 1 and all(secrets)  # + the lab's SSH key
    backend = s.workspace.env_vars["PULUMI_BACKEND_URL"].removeprefix("file://")
    for folder, _, files in os.walk(backend):
        for name in files:
            with open(os.path.join(folder, name), errors="replace") as f:
                text = f.read()
            assert not any(secret in text for secret in secrets), name
            assert "PRIVATE KEY" not in text, name


def on(node: str, key: str, command: str) -> str:
    client = ssh.connect({"host": {**NODES, **SPARE}[node], "private_key": key}, dial_timeout=30)
    try:
        result = ssh.run(client, command, timeout=60)
    finally:
        client.close()
    assert result.exit_status == 0, (node, command, result.stdout, result.stderr)
    return result.stdout.strip()


def system_state(node: str, key: str) -> str:
    """systemd's state of the node ("running": booted, no unit failed); otherwise with what explains it (the
    failed units and their last log lines, the jobs still queued)."""
    return on(node, key, (
        "state=$(systemctl is-system-running); echo $state; [ $state = running ] && exit; "
        "for u in $(systemctl --failed --no-legend --plain | awk '{print $1}'); do "
        "echo \"failed: $u\"; journalctl -b -u $u --no-pager -n 15; done; systemctl list-jobs --no-legend"
    ))


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
    tags = {"osd" + hashlib.sha256(f"{STACK}/{n}".encode()).hexdigest()[:8] for n in {**NODES, **SPARE}}
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


def simulate_machine_restart(nodes, env) -> None:
    """What a restart of this machine takes away from the test lab's `nodes`: every process, namespace, link and
    mount (the node disks, base image and package cache on disk survive)."""
    for node in nodes:
        for pid in netns_processes(f"osd-{STACK}-{node}"):
            with contextlib.suppress(ProcessLookupError):  # one that ended meanwhile
                os.kill(pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", f"/lab/stacks/{STACK}/package-cache"], check=False)
    subprocess.run(["pkill", "-KILL", "-f", f"machine=osd-{STACK}-"], check=False)
    state = os.path.join(env["OSD_CACHE"], "lab", "stacks", STACK)
    for node in nodes:
        subprocess.run(["ip", "netns", "del", f"osd-{STACK}-{node}"], check=False)
        subprocess.run(["umount", "-l", f"{state}/nodes/{node}/root"], check=False)
    subprocess.run(["ip", "link", "del", BRIDGE], check=False)
    deadline = time.monotonic() + 30
    while [x for x in leftovers() if not x.startswith(("veth", "process"))] and time.monotonic() < deadline:
        time.sleep(0.2)
