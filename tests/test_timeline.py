"""A deploy's timeline (scripts/timeline.py) from a synthetic run: three hosts (one name the prefix of another),
steps of a component with children, a dependency on a component, a failure, and a chain of dependencies that
is the critical path; read as the CLI's event log and as the Automation API's events."""

import json
import struct

from pulumi.automation.events import EngineEvent

from tests.integration.conftest import script_module

timeline = script_module("timeline")

HOSTS = [{"name": "controller", "address": "10.0.0.10", "roles": ["controller"]},
         {"name": "compute1", "address": "10.0.0.11", "roles": ["compute"]},
         {"name": "compute10", "address": "10.0.0.12", "roles": ["compute"]}]
CLOUD, HOST, LAB = "openstack-deploy:index:Cloud", "openstack-deploy:infra:Host", "openstack-deploy:lab:Lab"
MARIADB, NOVA = "openstack-deploy:infra:MariaDB", "openstack-deploy:openstack:Nova"
NOVA_COMPUTE, REGISTRATION = "openstack-deploy:openstack:NovaCompute", "openstack-deploy:infra:KeystoneRegistration"
PASSWORDS = "openstack-deploy:infra:Passwords"
ACCESS, COMMAND = "pulumi-python:dynamic/remote:HostAccess", "pulumi-python:dynamic/remote:Command"
PACKAGES, DATABASE = "pulumi-python:dynamic/remote:Packages", "pulumi-python:dynamic/mariadb:Database"
NODE, PASSWORD = "pulumi-python:dynamic/lab:Node", "pulumi-python:dynamic/secrets:Password"
PROVIDER = "pulumi:providers:openstack"


def urn(name, *types):
    return f"urn:pulumi:lab::openstack-deploy::{'$'.join(types)}::{name}"


U = {
    "cloud": urn("cloud", CLOUD),
    "lab": urn("lab", CLOUD, LAB),
    "boot": urn("lab-controller-boot", CLOUD, LAB, NODE),
    "passwords": urn("cloud-passwords", CLOUD, PASSWORDS),
    "nova_db_password": urn("cloud-passwords-nova_db", CLOUD, PASSWORDS, PASSWORD),
    **{f"host-{h}": urn(f"cloud-{h}", CLOUD, HOST) for h in ("controller", "compute1", "compute10")},
    **{f"ssh-{h}": urn(f"cloud-{h}-ssh", CLOUD, HOST, ACCESS) for h in ("controller", "compute1", "compute10")},
    "packages": urn("cloud-controller-packages", CLOUD, HOST, PACKAGES),
    "mariadb": urn("mariadb", CLOUD, MARIADB),
    "mariadb-service": urn("mariadb-controller-service", CLOUD, MARIADB, COMMAND),
    "nova": urn("nova", CLOUD, NOVA),
    "nova-database": urn("nova-database", CLOUD, NOVA, DATABASE),
    "nova-api": urn("nova-controller-api", CLOUD, NOVA, COMMAND),
    "identity": urn("nova-identity", CLOUD, NOVA, REGISTRATION),
    "identity-service": urn("nova-identity-service", CLOUD, NOVA, REGISTRATION,
                            "openstack:identity/serviceV3:ServiceV3"),
    "identity-user": urn("nova-identity-user", CLOUD, NOVA, REGISTRATION, "openstack:identity/user:User"),
    "provider": urn("keystone-openstack", PROVIDER),
    "nova-compute": urn("nova-compute", CLOUD, NOVA_COMPUTE),
    "compute1-service": urn("nova-compute-compute1-service", CLOUD, NOVA_COMPUTE, COMMAND),
    "compute10-service": urn("nova-compute-compute10-service", CLOUD, NOVA_COMPUTE, COMMAND),
    "compute1-records": urn("nova-compute-compute1-records", CLOUD, NOVA_COMPUTE, COMMAND),
}
PARENT = {"lab": "cloud", "boot": "lab", "passwords": "cloud", "nova_db_password": "passwords",
          **{f"host-{h}": "cloud" for h in ("controller", "compute1", "compute10")},
          **{f"ssh-{h}": f"host-{h}" for h in ("controller", "compute1", "compute10")},
          "packages": "host-controller", "mariadb": "cloud", "mariadb-service": "mariadb", "nova": "cloud",
          "nova-database": "nova", "nova-api": "nova", "identity": "nova", "identity-service": "identity",
          "identity-user": "identity", "nova-compute": "cloud", "compute1-service": "nova-compute",
          "compute10-service": "nova-compute", "compute1-records": "nova-compute"}
COMPONENTS = {"cloud", "lab", "passwords", "host-controller", "host-compute1", "host-compute10", "mariadb", "nova",
              "identity", "nova-compute"}
NEEDS = {
    "ssh-controller": ["boot"],
    "packages": ["ssh-controller"],
    "mariadb-service": ["ssh-controller", "packages"],
    "nova-database": ["ssh-controller", "mariadb-service", "nova_db_password"],
    "nova-api": ["ssh-controller", "nova-database"],
    "identity-service": ["nova-api"],
    "identity-user": ["nova-api"],
    "compute1-service": ["ssh-compute1", "identity"],  # a component: it stands for its children
    "compute10-service": ["ssh-compute10"],
    "compute1-records": ["ssh-controller", "nova-api"],  # named after compute1, run on the controller
}
OPENSTACK = {"identity-service", "identity-user"}


def state_resources():
    out = []
    for key, u in U.items():
        r = {"urn": u, "type": u.split("::")[2].split("$")[-1], "custom": key not in COMPONENTS,
             "dependencies": [U[d] for d in NEEDS.get(key, ())]}
        if key in PARENT:
            r["parent"] = U[PARENT[key]]
        if key in OPENSTACK:
            r["provider"] = U["provider"] + "::04f2b1a6-provider-id"
        out.append(r)
    return out


# The run, in whole seconds as the CLI logs it: (second, event, resource, op).
RUN = [
    (0, "prelude", None, None),
    (0, "pre", "nova", "create"),  # a component: no step of its own
    (0, "pre", "provider", "create"), (0, "outputs", "provider", "create"),
    (0, "pre", "boot", "create"), (0, "pre", "nova_db_password", "create"),
    (0, "pre", "ssh-compute1", "create"), (0, "pre", "ssh-compute10", "create"),
    (1, "outputs", "nova_db_password", "create"),
    (2, "outputs", "ssh-compute1", "create"), (2, "outputs", "ssh-compute10", "create"),
    (3, "pre", "compute10-service", "create"),
    (10, "outputs", "boot", "create"),
    (10, "pre", "ssh-controller", "create"), (12, "outputs", "ssh-controller", "create"),
    (12, "pre", "packages", "update"),
    (20, "error", "compute10-service", None), (20, "failed", "compute10-service", "create"),
    (40, "outputs", "packages", "update"),
    (40, "pre", "mariadb-service", "create"), (50, "outputs", "mariadb-service", "create"),
    (50, "pre", "nova-database", "create"), (52, "outputs", "nova-database", "create"),
    (52, "pre", "nova-api", "create"), (60, "outputs", "nova-api", "create"),
    (60, "pre", "compute1-records", "create"), (60, "pre", "identity-service", "create"),
    (60, "pre", "identity-user", "create"), (61, "same", "ssh-controller", None),
    (61, "outputs", "compute1-records", "create"),
    (63, "outputs", "identity-service", "create"), (63, "outputs", "identity-user", "create"),  # the user last
    (63, "pre", "compute1-service", "create"), (80, "outputs", "compute1-service", "create"),
    (80, "outputs", "nova", "create"),
    (81, "summary", None, None), (81, "cancel", None, None),
]
CHAIN = ["lab-controller-boot", "cloud-controller-ssh", "cloud-controller-packages", "mariadb-controller-service",
         "nova-database", "nova-controller-api", "nova-identity-user", "nova-compute-compute1-service"]


def event_log_lines():
    """The run as the CLI's `--event-log` writes it (JSON lines, the engine's field names)."""
    lines = []
    for sequence, (second, kind, key, op) in enumerate(RUN):
        event = {"sequence": sequence, "timestamp": 1_760_000_000 + second}
        meta = None
        if key is not None:
            state = {"urn": U[key], "type": U[key].split("::")[2].split("$")[-1], "custom": key not in COMPONENTS,
                     "parent": U[PARENT[key]] if key in PARENT else ""}
            meta = {"op": op or "same", "urn": U[key], "type": state["type"], "provider": "",
                    "old": None, "new": state}
        if kind == "prelude":
            event["preludeEvent"] = {"config": {}}
        elif kind in ("pre", "same"):
            event["resourcePreEvent"] = {"metadata": meta}
        elif kind == "outputs":
            event["resOutputsEvent"] = {"metadata": meta}
        elif kind == "error":
            event["diagnosticEvent"] = {"urn": U[key], "severity": "error", "message": "exit status 1", "color": "never"}
        elif kind == "failed":
            event["resOpFailedEvent"] = {"metadata": meta, "status": 1, "steps": 0}
        elif kind == "summary":
            event["summaryEvent"] = {"maybeCorrupt": False, "durationSeconds": 81, "resourceChanges": {}}
        else:
            event["cancelEvent"] = {}
        lines.append(json.dumps(event))
    return lines


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def names(steps):
    return [s.name for s in steps]


def test_the_event_log_gives_a_lane_per_host_the_extra_lanes_and_the_chain_as_critical_path(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(event_log_lines()) + "\n")
    out = tmp_path / "timeline.png"

    tl = timeline.render(timeline.read_event_log(str(log)), state_resources(), HOSTS, str(out), title="lab")

    assert list(tl.lanes) == ["controller", "compute1", "compute10", "cloud APIs", "this machine"]
    assert names(tl.lanes["controller"]) == ["cloud-controller-ssh", "cloud-controller-packages",
                                             "mariadb-controller-service", "nova-database", "nova-controller-api",
                                             "nova-compute-compute1-records"]
    assert names(tl.lanes["compute1"]) == ["cloud-compute1-ssh", "nova-compute-compute1-service"]
    assert names(tl.lanes["compute10"]) == ["cloud-compute10-ssh", "nova-compute-compute10-service"]
    assert names(tl.lanes["cloud APIs"]) == ["keystone-openstack", "nova-identity-service", "nova-identity-user"]
    assert names(tl.lanes["this machine"]) == ["lab-controller-boot", "cloud-passwords-nova_db"]
    assert names(tl.critical) == CHAIN
    assert tl.title == "lab: 15 steps in 1 min 21 s" and tl.duration == 81

    by_name = {s.name: s for s in tl.steps}
    assert (by_name["cloud-controller-packages"].op, by_name["cloud-controller-packages"].duration) == ("update", 28)
    failed = by_name["nova-compute-compute10-service"]
    assert (failed.status, failed.start, failed.end) == ("failed", 3, 20)
    assert [by_name[n].service for n in ("cloud-controller-ssh", "mariadb-controller-service", "nova-database",
                                         "nova-identity-user", "nova-compute-compute1-service", "lab-controller-boot",
                                         "cloud-passwords-nova_db", "keystone-openstack")] == \
        ["host", "mariadb", "nova", "nova", "nova-compute", "lab", "passwords", "providers"]

    width, height = png_size(out)
    assert 1000 <= width <= 3000 and 300 <= height <= 2000


def test_automation_api_events_stamped_on_receipt_keep_fractions_of_a_second(tmp_path):
    now = [0.0]
    recorder = timeline.Recorder(clock=lambda: now[0])
    for line in event_log_lines():
        data = json.loads(line)
        now[0] = 5000.0 + (data["timestamp"] - 1_760_000_000) / 4  # as if four times faster, between seconds
        recorder(EngineEvent.from_json(data))

    tl = timeline.render(recorder, state_resources(), [h["name"] for h in HOSTS], str(tmp_path / "t.png"))

    assert names(tl.critical) == CHAIN
    api = next(s for s in tl.steps if s.name == "nova-controller-api")
    assert (api.start, api.end, api.lane) == (13.0, 15.0, "controller")
    assert tl.title == "15 steps in 20.2 s"
    assert png_size(tmp_path / "t.png")[0] > 0


def test_a_step_on_a_host_lands_where_its_ssh_access_is_else_where_its_name_says():
    hosts = ["controller", "compute1", "compute10"]
    deps = [U["ssh-controller"], U["nova-api"]]
    assert timeline.lane_of(U["compute1-records"], hosts, deps) == "controller"
    assert timeline.lane_of(U["compute1-records"], hosts) == "compute1"  # (no state: a deleted resource)
    assert timeline.lane_of(urn("neutron-compute10-ovs-agent", CLOUD, "x:y:Neutron", COMMAND), hosts) == "compute10"
    assert timeline.lane_of(urn("keystone-database", CLOUD, "x:y:Keystone", DATABASE), hosts) == "a host (not known)"
    assert timeline.lane_of(urn("lab-compute1-rootfs", CLOUD, LAB, "pulumi-python:dynamic/lab:NodeRootfs"),
                            hosts) == "this machine"
