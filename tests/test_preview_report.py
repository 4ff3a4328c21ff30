"""The pull-request report of a preview (scripts/preview_report.py), rendered from engine events shaped as the
Automation API gives them: a table of changes of every kind, and no secret in any report."""

from types import SimpleNamespace


from components import render
from tests.integration.conftest import script_module

report = script_module("preview_report")

HOSTS = ["controller", "compute1"]
PASSWORD = "s3cr$t'\"pw"
CONF = "[database]\nconnection = mysql+pymysql://nova:{}@controller/nova\n[DEFAULT]\ndebug = {}\n"


def event(op, name, kind, old=None, new=None, outputs=None):
    meta = SimpleNamespace(op=SimpleNamespace(value=op), urn=f"urn:pulumi:lab::openstack-deploy::{kind}::{name}",
                           type=kind, old=SimpleNamespace(inputs=old, outputs=outputs if outputs is not None else old)
                           if old is not None else None,
                           new=SimpleNamespace(inputs=new, outputs=None) if new is not None else None)
    return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=meta))


def refreshed(name, kind):
    return event("refresh", name, kind)


FILE, COMMAND = "pulumi-python:dynamic/remote:File", "pulumi-python:dynamic/remote:Command"
PACKAGES, ENDPOINT = "pulumi-python:dynamic/remote:Packages", "openstack:identity/endpointV3:EndpointV3"


def nova_conf(debug: str, secret: bool):
    text = CONF.format(PASSWORD, debug)
    shown = render.masked(text, {"nova_db": PASSWORD})
    return {"path": "/etc/nova/nova.conf", "content": "[secret]" if secret else text, "shown": shown,
            "mode": "0640", "owner": "root", "group": "nova"}


def service(unit):
    return {"create": f"systemctl enable -q {unit} && {{ systemctl restart {unit}; }}", "triggers": [1]}


EVENTS = [
    event("update", "nova-controller-config", FILE, old=nova_conf("false", True), new=nova_conf("true", True)),
    event("update", "nova-controller-api", COMMAND, old=service("nova-api"), new=dict(service("nova-api"), triggers=[2])),
    event("create", "nova-controller-cell1", COMMAND, new={"create": "runuser -u nova -- nova-manage ..."}),
    refreshed("memcached-controller-service", COMMAND),
    event("create", "memcached-controller-service", COMMAND, new=service("memcached")),
    refreshed("cloud-controller-packages", PACKAGES),
    event("update", "cloud-controller-packages", PACKAGES, old={"packages": ["nova-api", "keystone"]},
          outputs={"packages": ["nova-api", "keystone"], "installed": ["keystone"]},
          new={"packages": ["nova-api", "keystone"]}),
    refreshed("glance-controller-config", FILE),
    event("update", "glance-controller-config", FILE, old={"path": "/etc/glance/glance-api.conf", "content": "[secret]",
                                                           "shown": "[DEFAULT]\n"},
          outputs={"path": "/etc/glance/glance-api.conf", "content": "[secret]"},
          new={"path": "/etc/glance/glance-api.conf", "content": "[secret]", "shown": "[DEFAULT]\n"}),
    refreshed("placement-identity-internal-endpoint", ENDPOINT),
    event("create", "placement-identity-internal-endpoint", ENDPOINT, new={"url": "http://controller:8778"}),
    event("delete", "nova-compute-compute2-service", COMMAND, old=service("nova-compute")),
    event("same", "keystone-controller-config", FILE, old={"path": "/etc/keystone/keystone.conf"}),
]


def test_the_report_shows_per_host_and_service_the_diff_the_restarts_the_steps_and_the_drift():
    text = report.render("lab", report.steps_from(EVENTS), HOSTS + ["compute2"], refresh=True)
    assert "**3 to create, 4 to update, 1 to delete**; drift found on 4" in text
    assert text.index("### controller") < text.index("### compute2") < text.index("### The cloud's resources")
    assert "-debug = false" in text and "+debug = true" in text  # the diff of the masked text
    assert " connection = mysql+pymysql://nova:<secret nova_db>@controller/nova" in text  # context, masked
    assert "- starts `memcached` again (found stopped, disabled or failed on the host)" in text
    assert "- stops and disables `nova-compute`" in text
    assert "- restarts `nova-api`" in text and "- one-off step `nova-controller-cell1` runs" in text
    assert "- packages missing on the host, installed again: `nova-api`" in text
    assert "differs on the host (it holds secrets: not shown)" in text
    assert "EndpointV3 `placement-identity-internal-endpoint` created (gone: deleted outside this program)" in text
    assert "### Drift found by the refresh" in text and "- `memcached-controller-service` on controller" in text
    assert "keystone-controller-config" not in text


def test_no_report_holds_a_secret_in_any_form():
    text = report.render("lab", report.steps_from(EVENTS), HOSTS, refresh=True)
    for form in render.written_forms(PASSWORD):
        assert form not in text


def test_a_preview_without_changes_says_so():
    assert "No changes. No drift" in report.render("lab", [], HOSTS, refresh=True)
