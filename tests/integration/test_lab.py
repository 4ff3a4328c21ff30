"""The lab with the real engine: nodes come up, reach each other, come back after a kill, and leave nothing. (A
restart of this machine is test_cloud's, on the deployed cloud.)"""

import os
import signal
import time

import pytest

from components.providers.lab import netns_processes, node_init
from tests.integration.labstack import (  # noqa: F401 (lab is a fixture)
    HOST_PREP, LAB, NODES, STACK, assert_secrets_only_as_ciphertext, lab, leftovers, on, private_key, system_state,
)


def test_lab_up_nodes_run_and_reach_each_other_then_a_killed_node_comes_back(lab):
    up = lab.up(target=HOST_PREP)
    assert up.summary.result == "succeeded"
    assert up.outputs["hosts"].value == {
        "controller": {"address": NODES["controller"], "roles": ["controller"]},
        "compute1": {"address": NODES["compute1"], "roles": ["compute"]},
    }
    key = private_key(lab)
    for node, other in (("controller", "compute1"), ("compute1", "controller")):
        assert system_state(node, key) == "running"
        assert on(node, key, "hostname") == node
        assert f"inet {NODES[node]}/24" in on(node, key, "ip -4 -o addr show dev eth0")
        on(node, key, f"ping -c 1 -W 2 {NODES[other]}")
        on(node, key, "apt-get update -qq")  # packages come through the lab's cache
    lab.preview(target=HOST_PREP, expect_no_changes=True)
    assert_secrets_only_as_ciphertext(lab)

    # Kill the compute node outright (its init, hence its whole PID namespace); a refresh sees it gone.
    init = node_init(f"osd-{STACK}-compute1")
    os.kill(init, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while node_init(f"osd-{STACK}-compute1") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node_init(f"osd-{STACK}-compute1") is None
    up = lab.up(refresh=True, target=HOST_PREP)
    assert up.summary.resource_changes.get("create") == 1  # only the node's boot
    assert node_init(f"osd-{STACK}-compute1") not in (None, init)
    assert system_state("compute1", key) == "running"
    on("compute1", key, f"ping -c 1 -W 2 {NODES['controller']}")


def test_three_up_destroy_cycles_are_clean(lab):
    for cycle in range(3):
        assert lab.up(target=LAB).summary.result == "succeeded", cycle
        assert netns_processes(f"osd-{STACK}-controller"), cycle
        lab.destroy()
        assert leftovers() == [], cycle


def test_a_wrong_name_mapping_stops_every_install_naming_it_and_etc_hosts_drift_is_repaired(lab):
    lab.up(target=LAB)  # bare nodes
    key = private_key(lab)
    # The seeds' classic failure (HTTP 500 from Keystone): a name mapped to another NIC's address.
    on("compute1", key, "sed -i '1i 10.67.0.99 controller' /etc/hosts")
    with pytest.raises(Exception) as failed:
        lab.up()
    assert (
        f"host compute1 maps controller to {NODES['controller']} 10.67.0.99 (expected {NODES['controller']}, its management address)"
        in str(failed.value)
    )
    for node in NODES:  # caught before anything was installed, on every host
        on(node, key, "! dpkg-query -W -f='${db:Status-Status}' mariadb-server rabbitmq-server 2>/dev/null | grep -q installed")

    on("compute1", key, "sed -i '/^10.67.0.99 controller$/d' /etc/hosts")
    lab.up(target=HOST_PREP)
    assert on("compute1", key, "getent ahostsv4 controller | awk '{print $1}' | sort -u") == NODES["controller"]
    # The Debian installer's 127.0.1.1 line for the host's own name is commented out, as the guide says.
    assert on("controller", key, "getent ahostsv4 controller | awk '{print $1}' | sort -u") == NODES["controller"]

    # A hand edit of the managed block is drift, and up --refresh puts it back.
    on("controller", key, "sed -i '/ compute1$/d' /etc/hosts")
    preview = lab.preview(refresh=True, target=HOST_PREP)
    assert preview.change_summary.get("create", 0) >= 1
    lab.up(refresh=True, target=HOST_PREP)
    assert on("controller", key, "getent ahostsv4 compute1 | awk '{print $1}' | sort -u") == NODES["compute1"]
