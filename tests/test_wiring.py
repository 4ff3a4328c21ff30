"""Wiring with Pulumi mocks (no CLI, no hosts): what the program registers for a given stack config."""

import json

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config import PASSWORDS

from tests.test_config import GOOD, KEY


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []
        self.calls = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outs = dict(args.inputs)
        if args.typ.endswith(":Password"):  # what the generator would make
            outs["value"] = f"pw-{args.name}"
        if args.typ.endswith(":HostAccess"):  # the key met at first contact
            outs["host_key"] = "ssh-ed25519 AAAAmock"
        if args.typ.endswith(":File"):  # a write count that moves with each new content, as writes do
            outs["version"] = hash(json.dumps(args.inputs.get("content"), sort_keys=True, default=str))
        if args.name.endswith("-admin-role") and args.typ.endswith(":Command"):  # Keystone's bootstrap made it
            outs["stdout"] = "role-admin-id\n"
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        if args.token == "openstack:identity/getRole:getRole":
            return {"id": f"role-{args.args['name']}-id", "name": args.args["name"]}
        return {}


def run_program(raw_config: dict):
    """Runs the program's wiring under mocks with the given stack config, waits for every registration,
    and returns the recorder and the Cloud component."""
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="openstack-deploy", stack="unit", preview=False)
    pulumi.runtime.set_all_config(
        {f"openstack-deploy:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in raw_config.items()}
    )
    from components import config
    from components.cloud import Cloud

    built = {}
    _sync_await(run_pulumi_func(lambda: built.setdefault("cloud", Cloud("cloud", config.load()))))
    return mocks, built["cloud"]


def value(output):
    return _sync_await(output.future())


def secret(output):
    return _sync_await(output.is_secret())


def by_type(mocks, suffix):
    return [r for r in mocks.resources if r.typ.endswith(suffix)]


def test_one_host_component_per_host_with_its_secret_connection():
    mocks, cloud = run_program(GOOD)
    hosts = by_type(mocks, ":Host")
    assert sorted(h.name for h in hosts) == ["cloud-cmp1", "cloud-ctl"]
    conn = cloud.hosts["ctl"].connection
    assert value(conn) == {"host": "10.0.0.10", "port": 22, "user": "root", "private_key": KEY, "dial_timeout": 120,
                           "name": "ctl", "host_key": "ssh-ed25519 AAAAmock"}  # pinned from first contact on
    assert secret(conn)


def test_passwords_generated_except_those_the_stack_sets():
    raw = dict(GOOD, passwords={"keystone_admin": "chosen-by-operator"})
    mocks, cloud = run_program(raw)
    generated = sorted(r.name for r in by_type(mocks, "secrets:Password"))
    assert "cloud-passwords-keystone_admin" not in generated
    assert "cloud-passwords-nova_db" in generated
    assert len(generated) == len(PASSWORDS) - 1
    assert value(cloud.passwords["keystone_admin"]) == "chosen-by-operator"
    assert secret(cloud.passwords["keystone_admin"]) and secret(cloud.passwords["nova_db"])


def test_lab_stack_builds_a_node_per_host_and_connects_through_it():
    raw = {k: v for k, v in GOOD.items() if k != "ssh"}
    raw["lab"] = {"bridge": "osdtest0"}
    mocks, cloud = run_program(raw)
    names = sorted(r.name for r in mocks.resources if r.typ.startswith("pulumi-python:dynamic/lab:"))
    assert names == sorted(
        ["lab-host-packages", "lab-bridge", "lab-package-cache", "lab-base-image"]
        + [f"lab-{n}-{step}" for n in ("ctl", "cmp1") for step in ("network", "rootfs", "boot")]
    )
    assert [r.name for r in by_type(mocks, "secrets:SshKey")] == ["lab-ssh-key"]
    bridge = by_type(mocks, "lab:Bridge")[0].inputs
    assert bridge["name"] == "osdtest0" and bridge["address_cidr"] == "10.0.0.1/24"
    net = {r.name: r.inputs for r in by_type(mocks, "lab:NodeNetwork")}["lab-cmp1-network"]
    assert net["address_cidr"] == "10.0.0.11/24" and net["gateway"] == "10.0.0.1" and len(net["veth"]) <= 15
    # The host's connection is the lab node's output: steps on the host wait for the node's boot.
    assert secret(cloud.hosts["cmp1"].connection)
    assert value(cloud.hosts["cmp1"].connection)["host"] == "10.0.0.11"


def test_bad_config_registers_nothing():
    from components.config import ConfigError

    with pytest.raises(ConfigError):
        run_program(dict(GOOD, managementCidr="10.9.0.0/24"))


def test_a_lab_on_a_machine_without_a_debian_archive_stops_before_anything_is_registered(monkeypatch):
    from components.config import ConfigError
    from components.providers import lab as labp

    third_party = {"/etc/apt/sources.list": "deb http://thirdparty.invalid/apt cloud-sdk-bookworm main\n"}
    monkeypatch.setattr(labp, "host_apt_sources", lambda: third_party)
    raw = {k: v for k, v in GOOD.items() if k != "ssh"} | {"lab": {"bridge": "osdtest0"}}
    with pytest.raises(ConfigError, match=r"^openstack-deploy:lab.suite: 'trixie': this machine's apt sources name no"):
        run_program(raw)


def test_a_key_of_another_namespace_is_an_error():
    from components.config import ConfigError

    pulumi.runtime.set_mocks(Recorder(), project="openstack-deploy", stack="unit", preview=False)
    pulumi.runtime.set_all_config({"openstak-deploy:region": "RegionTwo",
                                   **{f"openstack-deploy:{k}": json.dumps(v) for k, v in GOOD.items()}})
    from components import config

    with pytest.raises(ConfigError, match=r"^openstak-deploy:region: unknown namespace 'openstak-deploy'"):
        config.load()


def test_every_step_on_a_host_carries_the_stacks_deadlines():
    mocks, cloud = run_program(dict(GOOD, deadlines={"command": 900}))
    steps = [r for r in mocks.resources if r.typ.startswith("pulumi-python:dynamic/remote:")]
    assert steps and all(plain(r.inputs["connection"])["deadlines"] == {"command": 900} for r in steps)
    mocks, _ = run_program(GOOD)  # none set: the connection is as before (the kinds' defaults apply)
    assert not [r for r in mocks.resources if "deadlines" in (plain(r.inputs.get("connection")) or {})]


def test_hosts_summary_names_address_and_roles():
    _, cloud = run_program(GOOD)
    assert cloud.hosts_summary == {
        "ctl": {"address": "10.0.0.10", "roles": ["controller"]},
        "cmp1": {"address": "10.0.0.11", "roles": ["compute"]},
    }


def by_name(mocks):
    return {r.name: r for r in mocks.resources}


def plain(value):
    """A secret input as the mocks receive it: a signed wrapper around the value."""
    return value["value"] if isinstance(value, dict) and "value" in value else value


def test_controller_foundation_on_the_controller_only_and_nothing_on_compute_hosts():
    mocks, cloud = run_program(GOOD)
    names = by_name(mocks)
    for step in ("mariadb-ctl-config", "mariadb-ctl-service", "rabbitmq-ctl-user", "rabbitmq-ctl-no-guest",
                 "memcached-ctl-service", "keystone-database", "keystone-ctl-config", "keystone-ctl-db-sync",
                 "keystone-ctl-fernet", "keystone-ctl-bootstrap", "keystone-ctl-apache", "keystone-openstack",
                 "keystone-service-project", "keystone-user-role"):
        assert step in names, step
    packages = names["cloud-ctl-packages"].inputs["packages"]
    for p in ("mariadb-server", "rabbitmq-server", "memcached", "apache2", "libapache2-mod-wsgi-py3", "keystone",
              "glance-api", "placement-api", "nova-api", "nova-conductor", "nova-scheduler", "nova-consoleproxy"):
        assert p in packages
    assert "nova-compute" not in packages


def test_compute_hosts_run_nova_compute_and_the_network_agent_only_and_hold_no_database_credentials():
    mocks, cloud = run_program(GOOD)
    names = by_name(mocks)
    on_compute = sorted(n for n in names if "-cmp1-" in n and not n.startswith("cloud-cmp1")
                        and not n.endswith("-records"))
    assert on_compute == sorted(
        [f"neutron-cmp1-{step}" for step in ("config", "openvswitch", "openvswitch-offloads", "ovs-agent", "ovs-agent-config")]
        + [f"nova-compute-cmp1-{step}" for step in
           ("config", "driver-config", "facts", "libvirt", "libvirt-guests-off", "qemu-conf", "service")])
    # The host's records in the cloud are removed on the controller when it leaves, after its own services stopped.
    for records in ("nova-compute-cmp1-records", "neutron-cmp1-records"):
        assert plain(names[records].inputs["connection"])["host"] == "10.0.0.10"
        assert "--host cmp1" in names[records].inputs["delete"]
    agent = plain(names["neutron-cmp1-config"].inputs["content"])
    assert "[database]" not in agent and "keystone_authtoken" not in agent and "pw-cloud-passwords-neutron" not in agent
    packages = names["cloud-cmp1-packages"].inputs["packages"]
    assert "nova-compute" in packages and "mariadb-server" not in packages and "nova-api" not in packages
    conf = plain(names["nova-compute-cmp1-config"].inputs["content"])
    assert "[database]" not in conf and "[api_database]" not in conf and "pw-cloud-passwords-nova_db" not in conf
    assert "transport_url = rabbit://openstack:pw-cloud-passwords-rabbitmq@ctl:5672/" in conf
    assert "my_ip = 10.0.0.11" in conf
    controller = plain(names["nova-ctl-config"].inputs["content"])
    assert "connection = mysql+pymysql://nova:pw-cloud-passwords-nova_db@ctl/nova_api" in controller
    # Without facts (a preview before the host answers), emulation; with virtType set, that.
    assert "virt_type = qemu" in names["nova-compute-cmp1-driver-config"].inputs["content"]
    mocks, _ = run_program(dict(GOOD, virtType="kvm"))
    assert "virt_type = kvm" in by_name(mocks)["nova-compute-cmp1-driver-config"].inputs["content"]


def test_the_discover_run_waits_for_every_compute_host_and_a_new_host_adds_only_its_own_resources():
    mocks, _ = run_program(GOOD)
    bigger = dict(GOOD, hosts=GOOD["hosts"] + [{"name": "cmp2", "address": "10.0.0.12", "roles": ["compute"]}])
    mocks2, _ = run_program(bigger)
    before, after = by_name(mocks), by_name(mocks2)
    discover = after["nova-ctl-discover-hosts"]
    assert discover.inputs["triggers"] == ["cmp1", "cmp2"]
    added = set(after) - set(before)
    assert all("cmp2" in n for n in added), added
    assert {"cloud-cmp2", "nova-compute-cmp2-service", "nova-compute-cmp2-config"} <= added


def test_a_nova_option_changes_only_what_nova_reads():
    mocks, _ = run_program(GOOD)
    mocks2, _ = run_program(dict(GOOD, overrides={"nova": {"DEFAULT": {"debug": True}}}))
    before, after = by_name(mocks), by_name(mocks2)
    changed = sorted(n for n in before if before[n].inputs.get("triggers") != after[n].inputs.get("triggers"))
    assert changed == ["nova-compute-cmp1-service", "nova-ctl-api", "nova-ctl-conductor", "nova-ctl-metadata-api",
                       "nova-ctl-novncproxy", "nova-ctl-scheduler"]


def test_configs_carry_the_services_addresses_and_secrets_stay_secret():
    mocks, cloud = run_program(GOOD)
    names = by_name(mocks)
    assert "bind-address = 10.0.0.10" in names["mariadb-ctl-config"].inputs["content"]
    assert "-l 10.0.0.10" in names["memcached-ctl-config"].inputs["content"]
    keystone_conf = plain(names["keystone-ctl-config"].inputs["content"])
    assert "connection = mysql+pymysql://keystone:pw-cloud-passwords-keystone_db@ctl/keystone" in keystone_conf
    assert "memcache_servers = ctl:11211" in keystone_conf
    assert value(cloud.rabbitmq.transport_url) == "rabbit://openstack:pw-cloud-passwords-rabbitmq@ctl:5672/"
    for output in (cloud.rabbitmq.transport_url, cloud.keystone.admin_openrc, cloud.keystone.clouds_yaml):
        assert secret(output)
    # The openstack provider is the admin through the public endpoint; its password a secret input.
    provider = names["keystone-openstack"]
    assert provider.typ == "pulumi:providers:openstack"
    assert provider.inputs["authUrl"] == "http://10.0.0.10:5000/v3/" and provider.inputs["userName"] == "admin"
    assert plain(provider.inputs["password"]) == "pw-cloud-passwords-keystone_admin"
    assert provider.inputs["password"] != plain(provider.inputs["password"])  # sent as a secret
    # The admin password reaches keystone-manage on stdin, not on its command line.
    bootstrap = names["keystone-ctl-bootstrap"].inputs
    assert "pw-cloud-passwords-keystone_admin" not in bootstrap["create"]
    assert plain(bootstrap["stdin"]) == "pw-cloud-passwords-keystone_admin\n"


def test_restarts_carry_the_write_count_of_what_the_service_reads():
    raw = dict(GOOD, overrides={"keystone": {"DEFAULT": {"debug": True}}})
    mocks, _ = run_program(GOOD)
    mocks2, _ = run_program(raw)
    before, after = by_name(mocks), by_name(mocks2)
    assert before["keystone-ctl-apache"].inputs["triggers"] != after["keystone-ctl-apache"].inputs["triggers"]
    assert "debug = true" in plain(after["keystone-ctl-config"].inputs["content"])
    for unchanged in ("mariadb-ctl-service", "memcached-ctl-service", "rabbitmq-ctl-service"):
        assert before[unchanged].inputs["triggers"] == after[unchanged].inputs["triggers"]


def test_keystone_urls_public_on_the_address_internal_and_admin_on_the_name():
    mocks, cloud = run_program(GOOD)
    assert cloud.keystone.auth_url == "http://10.0.0.10:5000/v3/"
    create = by_name(mocks)["keystone-ctl-bootstrap"].inputs["create"]
    assert "--bootstrap-public-url http://10.0.0.10:5000/v3/" in create
    assert "--bootstrap-internal-url http://ctl:5000/v3/" in create
    assert "--bootstrap-region-id RegionOne" in create


def test_a_keystone_registration_is_a_user_its_role_a_service_and_three_endpoints():
    from components.blocks.registration import Identity, KeystoneRegistration, RegistrationArgs

    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="openstack-deploy", stack="unit", preview=False)
    urls = {i: "http://ctl:9292" for i in ("public", "internal", "admin")}

    def program():
        import pulumi_openstack as openstack

        provider = openstack.Provider("admin", auth_url="http://ctl:5000/v3/")
        keystone = openstack.identity.Role("keystone-up", name="stands-in-for-apache")
        identity = Identity(provider=provider, ready=[keystone], service_project_id=pulumi.Output.from_input("service-id"),
                            role_ids={"admin": pulumi.Output.from_input("admin-id")})
        args = RegistrationArgs(identity=identity, region="RegionOne", service="glance", service_type="image",
                                description="OpenStack Image", urls=urls, user="glance", password="pw")
        KeystoneRegistration("glance-keystone", args)
        with pytest.raises(ValueError, match="glance: no admin URL"):
            RegistrationArgs(identity=identity, region="R", service="glance", service_type="image", description="",
                             urls={"public": "u", "internal": "u"})
        with pytest.raises(ValueError, match="glance: role 'member' is not one of"):
            RegistrationArgs(identity=identity, region="R", service="glance", service_type="image", description="",
                             urls=urls, user="glance", password="pw", role="member")

    _sync_await(run_pulumi_func(program))
    entities = {r.name: r for r in mocks.resources if r.typ.startswith("openstack:identity/") and r.name != "keystone-up"}
    assert {n: r.typ.split(":")[-1] for n, r in entities.items()} == {
        "glance-keystone-user": "User", "glance-keystone-admin-role": "RoleAssignment",
        "glance-keystone-service": "ServiceV3", "glance-keystone-public-endpoint": "EndpointV3",
        "glance-keystone-internal-endpoint": "EndpointV3", "glance-keystone-admin-endpoint": "EndpointV3",
    }
    assert all(r.provider and "pulumi:providers:openstack::admin" in r.provider for r in entities.values())
    # The assignment names its user, project and role by ID: the graph orders it after all three.
    assert entities["glance-keystone-admin-role"].inputs == {"userId": "glance-keystone-user-id",
                                                             "projectId": "service-id", "roleId": "admin-id"}
    assert entities["glance-keystone-user"].inputs["domainId"] == "default"
    endpoint = entities["glance-keystone-internal-endpoint"].inputs
    assert endpoint == {"name": "glance-internal", "serviceId": "glance-keystone-service-id", "interface": "internal",
                        "url": "http://ctl:9292", "endpointRegion": "RegionOne"}


def test_the_service_project_and_roles_come_from_keystone_through_its_provider():
    mocks, cloud = run_program(GOOD)
    names = by_name(mocks)
    assert names["keystone-service-project"].inputs == {"name": "service", "domainId": "default",
                                                        "description": "Service Project"}
    assert names["keystone-user-role"].inputs == {"name": "user"}
    assert mocks.calls == []  # the admin role's ID is read on the controller: no lookup in Keystone
    assert names["glance-identity-admin-role"].inputs["roleId"] == "role-admin-id"
    assert names["nova-identity-admin-role"].inputs["projectId"] == "keystone-service-project-id"
    dynamic_keystone = [r.name for r in mocks.resources if "keystone" in r.typ and r.typ.startswith("pulumi-python")]
    assert dynamic_keystone == []


def test_every_file_holding_a_secret_has_its_masked_text_to_show_and_only_those():
    mocks, _ = run_program(GOOD)
    files = by_type(mocks, "remote:File")
    passwords = [f"pw-cloud-passwords-{name}" for name in PASSWORDS]
    holding = [f for f in files if any(p in json.dumps(plain(f.inputs["content"])) for p in passwords)]
    assert {f.name for f in holding} >= {"keystone-ctl-config", "keystone-ctl-admin-openrc", "nova-ctl-config",
                                        "horizon-ctl-settings", "neutron-ctl-metadata-agent-config"}
    for f in files:
        shown = f.inputs.get("shown")
        if f in holding:
            assert isinstance(shown, str) and "<secret " in shown, f.name  # a plain input: not a secret
            assert not any(p in shown for p in passwords), f.name
        else:
            assert shown is None, f.name  # its content is not secret: shown as it is
