"""The controller foundation from bare lab nodes with the real engine: MariaDB, RabbitMQ, memcached and
Keystone under Apache, checked with the admin-openrc on the controller and with the exported clouds.yaml
from this machine; then no changes on a second run, and a dropped grant found and put back."""

import openstack.config
import openstack.connection
import yaml

from tests.integration.labstack import NODES, lab, on, plaintext, private_key  # noqa: F401 (lab is a fixture)

# The install order the preview of a fresh stack must show (the seeds' order, by dependencies).
ORDER = [
    "mariadb-controller-service",
    "keystone-database",
    "keystone-controller-config",
    "keystone-controller-db-sync",
    "keystone-controller-fernet",
    "keystone-controller-bootstrap",
    "keystone-controller-apache",
    "keystone-provider",
    "keystone-service-project",
]

def test_keystone_from_bare_nodes_answers_on_the_controller_and_from_here(lab, tmp_path):
    preview = lab.preview()
    lines = [line.strip() for line in preview.stdout.splitlines() if line.lstrip().startswith("+ ")]
    positions = []
    for name in ORDER:
        at = [i for i, line in enumerate(lines) if name in line.split()]
        assert at, (name, preview.stdout)
        positions.append(at[0])
    assert positions == sorted(positions), preview.stdout

    up = lab.up()
    assert up.outputs["auth_url"].value == f"http://{NODES['controller']}:5000/v3/"
    assert up.outputs["admin_openrc"].secret and up.outputs["clouds_yaml"].secret
    key = private_key(lab)

    # On the controller, with the admin-openrc (0600), as the seeds do.
    assert on("controller", key, "stat -c %a /root/admin-openrc") == "600"
    admin = ". /root/admin-openrc && openstack"
    assert on("controller", key, f"{admin} token issue -f value -c id")
    assert {"admin", "service"} <= set(on("controller", key, f"{admin} project list -f value -c Name").split())
    assert "identity" in on("controller", key, f"{admin} catalog list -f value -c Type").split()
    assert "user" in on("controller", key, f"{admin} role list -f value -c Name").split()
    # Apache serves Keystone; Debian's uwsgi unit is masked; AMQP, memcached and SQL on the management address.
    assert on("controller", key, "systemctl is-enabled keystone || true") == "masked"
    listening = on("controller", key, "ss -Hltn | awk '{print $4}'").split()
    for port in ("5000", "3306", "5672", "11211"):
        assert f"{NODES['controller']}:{port}" in listening, (port, listening)
    assert "guest" not in on("controller", key, "rabbitmqctl -q list_users | cut -f1").split()

    # From this machine, with the exported clouds.yaml and openstacksdk.
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(up.outputs["clouds_yaml"].value)
    assert yaml.safe_load(clouds.read_text())["clouds"]["admin"]["auth"]["auth_url"] == up.outputs["auth_url"].value
    config = openstack.config.OpenStackConfig(config_files=[str(clouds)], load_envvars=False)
    conn = openstack.connection.Connection(config=config.get_one(cloud="admin"))
    assert conn.authorize()
    assert {"admin", "service"} <= {p.name for p in conn.identity.projects()}
    assert [s.type for s in conn.identity.services()] == ["identity"]
    assert len(list(conn.identity.endpoints())) == 3

    # A second run changes nothing.
    again = lab.up()
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes

    # A grant dropped by hand is drift, and up --refresh puts it back.
    on("controller", key, "mariadb -e \"REVOKE ALL PRIVILEGES ON keystone.* FROM 'keystone'@'%'\"")
    drift = lab.preview(refresh=True, diff=True)
    assert drift.change_summary.get("update") == 1, drift.change_summary
    assert "keystone-database" in drift.stdout
    lab.up(refresh=True)
    assert "ALL PRIVILEGES ON `keystone`.*" in on("controller", key, "mariadb -e \"SHOW GRANTS FOR 'keystone'@'%'\"")
    lab.preview(refresh=True, expect_no_changes=True)
