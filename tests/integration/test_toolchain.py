"""The bootstrapped toolchain with the real engine: versions, dynamic providers, config errors, no internet."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.integration.conftest import ROOT, cli, stack

with open(os.path.join(ROOT, "toolchain", "versions.env")) as f:
    VERSIONS = dict(re.findall(r"^(\w+)=(\S+)", f.read(), re.M))


def test_cli_is_the_pinned_version(env):
    out = subprocess.run(["pulumi", "version"], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == VERSIONS["PULUMI_VERSION"]


def test_python_sdk_matches_the_cli(env):
    out = subprocess.run(
        ["python", "-c", "import importlib.metadata as m; print(m.version('pulumi'))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert "v" + out.strip() == VERSIONS["PULUMI_VERSION"]


def test_language_host_and_dynamic_provider_plugin_are_on_path(env):
    for tool in ("pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        assert shutil.which(tool, path=env["PATH"]), tool


def test_lab_stack_preview_runs_the_dynamic_provider_plugin(project):
    """A preview of the lab stack asks pulumi-resource-pulumi-python to check every dynamic resource."""
    preview = stack(project, "lab").preview()
    assert preview.change_summary.get("create", 0) >= 28


BAD = [
    ("hosts[1].roles", [{"name": "controller", "address": "10.66.0.10", "roles": ["controller"]},
                        {"name": "compute1", "address": "10.66.0.11", "roles": ["storage"]}],
     "openstack-deploy:hosts[1] (compute1).roles: unknown role 'storage'"),
    ("hosts[1].address", [{"name": "controller", "address": "10.66.0.10", "roles": ["controller"]},
                          {"name": "compute1", "address": "10.99.0.11", "roles": ["compute"]}],
     "openstack-deploy:hosts[1] (compute1).address: 10.99.0.11 is outside managementCidr 10.66.0.0/24"),
    ("no controller", [{"name": "compute1", "address": "10.66.0.11", "roles": ["compute"]}],
     "openstack-deploy:hosts: no host has the controller role"),
]


@pytest.mark.parametrize("hosts,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_fails_with_one_line_before_any_resource(project, hosts, message):
    work, _ = project
    with open(work / "stacks" / "Pulumi.lab.yaml") as f:
        doc = yaml.safe_load(f)
    doc["config"]["openstack-deploy:hosts"] = hosts
    with open(work / "stacks" / "Pulumi.lab.yaml", "w") as f:
        yaml.safe_dump(doc, f)
    cli(project, "stack", "init", "lab")
    result = cli(project, "preview", "--stack", "lab", "--json", check=False)
    assert result.returncode != 0
    events = json.loads(result.stdout)
    steps = [s["urn"] for s in events.get("steps", [])]
    assert all("pulumi:pulumi:Stack" in u for u in steps), steps  # nothing of ours registered
    diagnostics = [d["message"].strip() for d in events.get("diagnostics", []) if d.get("severity") == "error"]
    assert len(diagnostics) == 1 and "\n" not in diagnostics[0], diagnostics
    assert diagnostics[0].startswith(f"error: {message}"), diagnostics


# connect() targets on this machine: IPv4 loopback, IPv6 loopback, and IPv4 loopback mapped into IPv6.
LOOPBACK = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "(::1|::ffff:127\.[0-9.]+)"')


def test_preview_makes_no_connection_outside_this_machine(project):
    """strace every connect() of the CLI, the language host, the program and the plugins during a preview."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    cli(project, "stack", "init", "lab")
    work, test_env = project
    trace = work.parent / "connect.trace"
    subprocess.run(
        ["strace", "-f", "-e", "trace=connect", "-o", str(trace), "pulumi", "preview", "--stack", "lab"],
        cwd=work, env=test_env, capture_output=True, text=True, check=True,
    )
    calls = [line for line in trace.read_text().splitlines() if "connect(" in line]
    assert calls, "strace saw no connect() at all"
    outside = [c for c in calls if "AF_INET" in c and not LOOPBACK.search(c)]
    assert outside == []


def test_a_fresh_clone_bootstraps_and_previews_the_lab(tmp_path, env):
    """The README's main command path from a fresh clone of HEAD, up to a preview of the lab (no nodes made):
    nothing of this checkout's (venv, state directory) is there to lean on."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    keep = {k: v for k, v in env.items() if k not in ("PULUMI_BACKEND_URL", "OSD_ROOT", "OSD_VENV")}
    keep["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(ROOT))
    subprocess.run([str(clone / "scripts" / "bootstrap")], env=keep, capture_output=True, text=True, check=True)
    preview = subprocess.run([str(clone / "scripts" / "lab"), "preview"], env=keep, capture_output=True, text=True)
    assert preview.returncode == 0, preview.stderr
    assert (clone / ".state").is_dir() and "to create" in preview.stdout
