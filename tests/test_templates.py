"""Golden renders of every template for each profile, INI files parsed, and the overrides merge.

Regenerate the golden files after an intended template change with `UPDATE_GOLDEN=1 make test`, and
review the diff like code.
"""

import configparser
import os
import re

import pytest
import yaml

from components import render
from components.profiles import PROFILES

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")

# What services authenticate with (ServiceContext.auth), and Nova's values on any host.
AUTH = {"auth_url": "http://controller:5000/v3/", "public_auth_url": "http://10.0.0.10:5000/v3/",
        "memcached_servers": "controller:11211"}
NOVA = dict(
    api_database_url="mysql+pymysql://nova:NOVA_DBPASS@controller/nova_api",
    database_url="mysql+pymysql://nova:NOVA_DBPASS@controller/nova",
    transport_url="rabbit://openstack:RABBIT_PASS@controller:5672/",
    auth=AUTH | {"username": "nova", "password": "NOVA_PASS"},
    placement_auth=AUTH | {"username": "placement", "password": "PLACEMENT_PASS"},
    region="RegionOne", glance_url="http://controller:9292",
    novncproxy_base_url="http://10.0.0.10:6080/vnc_auto.html",
    network_auth=AUTH | {"username": "neutron", "password": "NEUTRON_PASS"}, metadata_secret="METADATA_SECRET",
)
NEUTRON = dict(transport_url="rabbit://openstack:RABBIT_PASS@controller:5672/")
NEUTRON_SERVER = NEUTRON | dict(
    server=True, database_url="mysql+pymysql://neutron:NEUTRON_DBPASS@controller/neutron",
    auth=AUTH | {"username": "neutron", "password": "NEUTRON_PASS"},
    nova_auth=AUTH | {"username": "nova", "password": "NOVA_PASS"}, region="RegionOne", workers=2,
)
HORIZON = dict(secret_key="K3y 'with' \"quotes\" \\ and {braces}", allowed_hosts=["10.0.0.10", "controller"],
               webroot="/", static_root="/var/lib/openstack-dashboard/static/", time_zone="UTC",
               keystone_url="http://controller:5000/v3/", default_role="user", region="RegionOne",
               memcached_servers=["controller:11211"], overrides={})
UWSGI_API = dict(workers=2, name="nova-api", user="nova", wsgi_file="/usr/bin/nova-api-wsgi",
                 bind_address="10.0.0.10", port=8774, defaults_path="/etc/default/nova-api")

# Every template with the values the components pass (fixed, made-up ones).
CASES = {
    ("mariadb", "openstack.cnf"): dict(bind_address="10.0.0.10", max_connections=4096),
    ("memcached", "memcached.conf"): dict(listen_address="10.0.0.10", memory_mb=256, max_connections=4096),
    ("rabbitmq", "rabbitmq-env.conf"): dict(listen_address="10.0.0.10"),
    ("rabbitmq", "epmd-socket.conf"): dict(listen_address="10.0.0.10"),
    ("keystone", "keystone.conf"): dict(
        database_url="mysql+pymysql://keystone:KEYSTONE_DBPASS@controller/keystone",
        memcache_servers="controller:11211",
    ),
    ("apache", "wsgi-site.conf"): dict(title="Keystone", bind_address="10.0.0.10", port=5000, processes=2,
                                       process_group="keystone-public", user="keystone",
                                       script="keystone-wsgi-public", script_dir="/usr/bin",
                                       log_dir="/var/log/apache2", log_name="keystone", limit_request_body=114688,
                                       static_url="", static_dir=""),
    ("apache", "servername.conf"): dict(server_name="controller"),
    ("apache", "ports.conf"): dict(),
    ("keystone", "admin-openrc"): dict(password="ADMIN 'PASS'", auth_url="http://10.0.0.10:5000/v3/",
                                       region="RegionOne"),
    ("keystone", "clouds.yaml"): dict(password='ADMIN "PASS"', auth_url="http://10.0.0.10:5000/v3/",
                                      region="RegionOne"),
    ("glance", "glance-api.conf"): dict(bind_address="10.0.0.10", workers=2,
                                        database_url="mysql+pymysql://glance:GLANCE_DBPASS@controller/glance",
                                        auth=AUTH | {"username": "glance", "password": "GLANCE_PASS"},
                                        images_dir="/var/lib/glance/images/"),
    ("placement", "placement.conf"): dict(database_url="mysql+pymysql://placement:PLACEMENT_DBPASS@controller/placement",
                                          auth=AUTH | {"username": "placement", "password": "PLACEMENT_PASS"}),
    ("nova", "nova.conf"): NOVA | dict(controller=True, my_ip="10.0.0.10"),
    ("uwsgi", "api.ini"): UWSGI_API,
    ("uwsgi", "api.default"): dict(init_script="nova-api", ini_path="/etc/nova/nova-api-uwsgi.ini"),
    ("neutron", "neutron.conf"): NEUTRON_SERVER,
    ("neutron", "ml2_conf.ini"): dict(physical_network="provider", vlan_range="1000:1999"),
    ("neutron", "openvswitch_agent.ini"): dict(physical_network="provider", provider_bridge="br-provider"),
    ("neutron", "dhcp_agent.ini"): dict(),
    ("neutron", "l3_agent.ini"): dict(),
    ("neutron", "metadata_agent.ini"): dict(nova_metadata_host="controller", nova_metadata_port=8775,
                                            metadata_secret="METADATA_SECRET"),
    ("nova", "nova-compute.conf"): dict(virt_type="qemu", virt_type_reason="virtType auto: no usable hardware virtualisation"),
    ("libvirt", "qemu.conf"): dict(in_container=True, container="systemd-nspawn"),
    ("horizon", "local_settings.py"): dict(),
    ("horizon", "openstack_deploy.py"): HORIZON,
}
# More renders of the same templates: the other branches.
VARIANTS = {
    ("nova", "nova.conf", "compute"): NOVA | dict(controller=False, my_ip="10.0.0.11"),
    ("libvirt", "qemu.conf", "host"): dict(in_container=False, container="none"),
    ("uwsgi", "api.ini", "metadata"): UWSGI_API | dict(name="nova-api-metadata", wsgi_file="/usr/bin/nova-metadata-wsgi",
                                                     port=8775, defaults_path="/etc/default/nova-api-metadata"),
    ("uwsgi", "api.default", "metadata"): dict(init_script="nova-api-metadata",
                                               ini_path="/etc/nova/nova-api-metadata-uwsgi.ini"),
    ("uwsgi", "api.ini", "neutron"): UWSGI_API | dict(name="neutron-api", user="neutron",
                                                    wsgi_file="/usr/bin/neutron-api", port=9696,
                                                    defaults_path="/etc/default/neutron-server"),
    ("neutron", "neutron.conf", "agent"): NEUTRON | dict(server=False),
    ("neutron", "openvswitch_agent.ini", "no-provider"): dict(physical_network="provider", provider_bridge=None),
    ("horizon", "openstack_deploy.py", "overrides"): HORIZON | dict(overrides={"SESSION_TIMEOUT": 7200,
                                                                             "SITE_BRANDING": "Lab's \"cloud\""}),
    ("apache", "wsgi-site.conf", "dashboard"): dict(
        title="Horizon", bind_address="10.0.0.10", port=80, processes=2, process_group="horizon", user="horizon",
        script="wsgi.py", script_dir="/usr/share/openstack-dashboard", log_dir="/var/log/apache2", log_name="horizon",
        limit_request_body=None, static_url="/static", static_dir="/var/lib/openstack-dashboard/static"),
}
INI = {("mariadb", "openstack.cnf"), ("keystone", "keystone.conf"), ("glance", "glance-api.conf"),
       ("placement", "placement.conf"), ("nova", "nova.conf"), ("nova", "nova-compute.conf"),
       ("uwsgi", "api.ini"), ("neutron", "neutron.conf"), ("neutron", "ml2_conf.ini"),
       ("neutron", "openvswitch_agent.ini"), ("neutron", "dhcp_agent.ini"), ("neutron", "l3_agent.ini"),
       ("neutron", "metadata_agent.ini")}


def all_templates() -> set[tuple[str, str]]:
    found = set()
    for folder, _, files in os.walk(render.TEMPLATES):
        for name in files:
            if name.endswith(".j2") and not name.startswith("_"):  # _name.j2: macros, used by the others
                service = os.path.relpath(folder, render.TEMPLATES).split(os.sep)[0]
                found.add((service, name[: -len(".j2")]))
    return found


def test_every_template_has_a_golden_case():
    assert all_templates() == set(CASES)


RENDERS = {(service, filename, ""): values for (service, filename), values in CASES.items()} | VARIANTS


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("service,filename,variant", sorted(RENDERS))
def test_golden_render(profile, service, filename, variant):
    text = render.render(service, filename, profile, **RENDERS[(service, filename, variant)])
    path = os.path.join(GOLDEN, profile, service, filename + (f".{variant}" if variant else ""))
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()
    if (service, filename) in INI:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.read_string(text)
        assert parser.sections() or parser.defaults()


def test_a_compute_hosts_nova_conf_has_no_database_section_or_credentials():
    text = render.render("nova", "nova.conf", "debian", **VARIANTS[("nova", "nova.conf", "compute")])
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert not {"database", "api_database"} & set(parser.sections())
    assert "NOVA_DBPASS" not in text and "mysql" not in text
    assert parser["vnc"]["novncproxy_base_url"] == "http://10.0.0.10:6080/vnc_auto.html"
    controller = render.render("nova", "nova.conf", "debian", **CASES[("nova", "nova.conf")])
    assert "mysql+pymysql://nova:NOVA_DBPASS@controller/nova_api" in controller


# Each listener's setting in the file that sets it, with the values of CASES / VARIANTS (management address 10.0.0.10).
LISTENERS = {
    ("mariadb", "openstack.cnf", ""): ["bind-address = 10.0.0.10"],
    ("memcached", "memcached.conf", ""): ["-l 10.0.0.10", "-U 0"],
    ("rabbitmq", "rabbitmq-env.conf", ""): [
        "NODE_IP_ADDRESS=10.0.0.10", "DIST_PORT=25672",
        'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {10,0,0,10}"', "ERL_EPMD_ADDRESS=10.0.0.10"],
    # The packaged ListenStream=4369 (every address) reset first, then the management address and loopback.
    ("rabbitmq", "epmd-socket.conf", ""): ["[Socket]", "ListenStream=", "ListenStream=10.0.0.10:4369",
                                           "ListenStream=127.0.0.1:4369", "FreeBind=true"],
    ("apache", "wsgi-site.conf", ""): ["Listen 10.0.0.10:5000", "<VirtualHost 10.0.0.10:5000>"],
    ("apache", "ports.conf", ""): [],
    ("glance", "glance-api.conf", ""): ["bind_host = 10.0.0.10"],
    ("uwsgi", "api.ini", ""): ["http-socket = 10.0.0.10:8774"],
    ("uwsgi", "api.ini", "metadata"): ["http-socket = 10.0.0.10:8775"],
    ("uwsgi", "api.ini", "neutron"): ["http-socket = 10.0.0.10:9696"],
    ("uwsgi", "api.default", ""): ['DAEMON_ARGS="--ini /etc/nova/nova-api-uwsgi.ini"'],
    ("uwsgi", "api.default", "metadata"): ['DAEMON_ARGS="--ini /etc/nova/nova-api-metadata-uwsgi.ini"'],
    ("nova", "nova.conf", ""): ["server_listen = $my_ip", "novncproxy_host = $my_ip"],
    ("nova", "nova.conf", "compute"): ["server_listen = $my_ip"],
}
_EVERY_ADDRESS = re.compile(r"0\.0\.0\.0|\[::\]|\*:\d|^Listen \d+$|^ListenStream=\d+$|--http-socket :")


def settings(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("service,filename,variant", sorted(LISTENERS))
def test_each_listener_is_set_to_the_management_address(service, filename, variant):
    lines = settings(render.render(service, filename, "debian", **RENDERS[(service, filename, variant)]))
    expected = LISTENERS[(service, filename, variant)]
    assert [line for line in lines if line in expected] == expected
    if (service, filename) == ("apache", "ports.conf"):
        assert lines == []  # no Listen at all: each site brings its own


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("service,filename,variant", sorted(RENDERS))
def test_no_template_sets_a_socket_on_every_address(profile, service, filename, variant):
    lines = settings(render.render(service, filename, profile, **RENDERS[(service, filename, variant)]))
    assert not [line for line in lines if _EVERY_ADDRESS.search(line)]


def test_the_uwsgi_apis_socket_is_in_its_ini_and_not_in_the_init_scripts_arguments():
    for variant, port in (("", 8774), ("metadata", 8775), ("neutron", 9696)):
        ini = configparser.ConfigParser(interpolation=None, strict=True)
        ini.read_string(render.render("uwsgi", "api.ini", "debian", **RENDERS[("uwsgi", "api.ini", variant)]))
        assert ini["uwsgi"]["http-socket"] == f"10.0.0.10:{port}"
    for variant in ("", "metadata"):
        default = render.render("uwsgi", "api.default", "debian", **RENDERS[("uwsgi", "api.default", variant)])
        assert "socket" not in " ".join(settings(default))


def test_an_agent_hosts_neutron_conf_holds_no_database_or_keystone_credentials():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render.render("neutron", "neutron.conf", "debian", **VARIANTS[("neutron", "neutron.conf", "agent")]))
    assert not {"database", "keystone_authtoken", "nova"} & set(parser.sections())
    assert parser["DEFAULT"]["transport_url"].startswith("rabbit://")
    server = configparser.ConfigParser(interpolation=None)
    server.read_string(render.render("neutron", "neutron.conf", "debian", **CASES[("neutron", "neutron.conf")]))
    assert server["DEFAULT"]["notify_nova_on_port_status_changes"] == "true"  # or servers never become ACTIVE
    assert server["nova"]["username"] == "nova"


def test_keystone_conf_has_the_seeds_settings():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render.render("keystone", "keystone.conf", "debian", **CASES[("keystone", "keystone.conf")]))
    assert parser["database"]["connection"].startswith("mysql+pymysql://")
    assert parser["token"]["provider"] == "fernet"
    assert parser["cache"]["memcache_servers"] == "controller:11211"


def test_secrets_are_quoted_for_the_shell_and_for_yaml():
    openrc = render.render("keystone", "admin-openrc", "debian", **CASES[("keystone", "admin-openrc")])
    assert "export OS_PASSWORD='ADMIN '\"'\"'PASS'\"'\"''" in openrc
    clouds = yaml.safe_load(render.render("keystone", "clouds.yaml", "debian", **CASES[("keystone", "clouds.yaml")]))
    assert clouds["clouds"]["admin"]["auth"]["password"] == 'ADMIN "PASS"'


def test_a_missing_value_is_an_error_not_an_empty_string():
    with pytest.raises(Exception, match="bind_address"):
        render.render("mariadb", "openstack.cnf", "debian", max_connections=1)


def test_overrides_replace_in_place_append_to_their_section_or_add_one():
    text = "# head\n[DEFAULT]\ndebug = false\n\n[token]\nprovider = fernet\n"
    merged = render.merge_ini(text, {"DEFAULT": {"debug": True, "log_dir": "/x"}, "oslo_policy": {"enforce_scope": False}})
    assert merged == (
        "# head\n[DEFAULT]\ndebug = true\nlog_dir = /x\n\n[token]\nprovider = fernet\n\n"
        "[oslo_policy]\nenforce_scope = false\n"
    )
    assert render.merge_ini(text, {}) == text


def test_host_overrides_win_over_stack_ones_option_by_option():
    merged = render.merged_overrides({"DEFAULT": {"debug": False, "a": 1}}, {"DEFAULT": {"debug": True}})
    assert merged == {"DEFAULT": {"debug": True, "a": 1}}


def test_rabbitmq_hashes_a_password_as_rabbitmq_does():
    from components.rabbitmq import definitions, password_hash

    # RabbitMQ's documented example ("Computing Password Hashes"): salt 908DC60A, password test12.
    assert password_hash("test12", bytes.fromhex("908DC60A")) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    assert definitions("pw") == definitions("pw") != definitions("pw2")  # the same on every run; no password in it
    assert "a-rabbit-password-1" not in definitions("a-rabbit-password-1")


def test_the_dashboards_settings_are_python_that_reads_back_every_value():
    for variant in ("", "overrides"):
        values = RENDERS[("horizon", "openstack_deploy.py", variant)]
        found: dict = {}
        exec(render.render("horizon", "openstack_deploy.py", "debian", **values), {}, found)
        assert found["SECRET_KEY"] == values["secret_key"] and found["ALLOWED_HOSTS"] == values["allowed_hosts"]
        assert found["CACHES"]["default"]["LOCATION"] == ["controller:11211"]
        assert found["DEFAULT_SERVICE_REGIONS"] == {"*": "RegionOne"}
        for name, value in values["overrides"].items():
            assert found[name] == value


def test_a_dashboard_setting_name_that_is_not_one_is_refused():
    with pytest.raises(render.RenderError):
        render.render("horizon", "openstack_deploy.py", "debian", **HORIZON | dict(overrides={"X = 1\nY": 1}))
