"""The other supported release: the rest of the integration suite runs on the default (2025.1 on Debian 13); here
Zed on Debian 12 is deployed from bare lab nodes by the same program and checked as an operator would (a token,
the catalog, the compute services up, the hypervisor, every network agent alive), then a second `up` changes nothing."""

from tests.integration.conftest import make_project
from tests.integration.labstack import lab_stack, on, private_key

ADMIN = ". /root/admin-openrc && openstack"


def test_zed_on_debian_12_deploys_answers_and_settles(tmp_path, env):
    with lab_stack(make_project(tmp_path, env), release="zed") as s:
        s.up()
        key = private_key(s)
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
        assert sorted(agents.splitlines()) == [
            "DHCP agent controller True", "L3 agent controller True", "Metadata agent controller True",
            "Open vSwitch agent compute1 True", "Open vSwitch agent controller True"], agents
        again = s.up()
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
