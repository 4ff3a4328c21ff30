"""Nova's management side on the controller, following the seeds: databases nova_api, nova and nova_cell0,
the compute service in Keystone (port 8774, /v2.1), nova.conf, the cells v2 steps (api_db sync, map_cell0,
create_cell cell1, db sync, list_cells showing both), then the api, metadata api, scheduler, conductor and
novncproxy services. Compute hosts reach Nova only through RabbitMQ (components/nova_compute.py); once they run,
`discover_hosts` maps them into cell1."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from . import render
from .blocks.service import ServiceComponent, ServiceContext
from .blocks.steps import as_user, platform_service, restarted_on, wait_until
from .providers.remote import RemoteCommand

PORT = 8774
PACKAGES = {"controller": ("nova_controller",)}  # the logical package sets (profiles.py) by role
METADATA_PORT = 8775  # what Neutron's metadata agent will ask
NOVNC_PORT = 6080
# The APIs Debian runs under uwsgi (step, logical service, WSGI script, port): the seeds' enabled_apis.
UWSGI_APIS = (
    ("api", "nova_api", "nova-api-wsgi", PORT, "Nova API"),
    ("metadata-api", "nova_api_metadata", "nova-metadata-wsgi", METADATA_PORT, "Nova metadata API"),
)
# The daemons that read nova.conf on the controller (logical names, profiles.py), each restarted on its hash.
DAEMONS = ("nova_scheduler", "nova_conductor", "nova_novncproxy")


@dataclass(frozen=True)
class NovaArgs:
    ctx: ServiceContext
    db_password: pulumi.Input[str]
    password: pulumi.Input[str]  # the nova service user's
    transport_url: pulumi.Input[str]
    glance_url: str
    placement_password: pulumi.Input[str]  # Nova authenticates to Placement as the placement user (seeds)
    network_password: pulumi.Input[str]  # and to Neutron as the neutron user
    metadata_secret: pulumi.Input[str]  # shared with Neutron's metadata agent
    after: Sequence[pulumi.Resource] = ()  # Glance and Placement ready
    workers: int = 2


def nova_conf(profile: str, controller: bool, my_ip: str, values: dict, overrides: dict) -> str:
    """nova.conf for a controller or a compute host: only a controller's holds database connections."""
    return render.merge_ini(render.render("nova", "nova.conf", profile, controller=controller, my_ip=my_ip, **values),
                            overrides)


# Cell mappings as templates (Nova's "template URLs"): each {part} comes from nova.conf's own URL of the same kind.
CELL0 = "00000000-0000-0000-0000-000000000000"
CELL_URLS = (
    "cell1=$(nova-manage cell_v2 list_cells | awk -F'|' '$2 ~ /^ *cell1 *$/ {gsub(/ /, \"\", $3); print $3}'); "
    "test -n \"$cell1\"; "
    f"nova-manage cell_v2 update_cell --cell_uuid {CELL0} --transport-url none:/// "
    "--database_connection '{scheme}://{username}:{password}@{hostname}/nova_cell0'; "
    "nova-manage cell_v2 update_cell --cell_uuid \"$cell1\" "
    "--transport-url '{scheme}://{username}:{password}@{hostname}:{port}/{path}' "
    "--database_connection '{scheme}://{username}:{password}@{hostname}/nova'"
)
# (nova-manage shows the mappings filled in: their stored form is read from the API database.)
CELL_URLS_TEMPLATED = (
    "test \"$(mariadb -N -B -e \"SELECT COUNT(*) FROM nova_api.cell_mappings "
    "WHERE database_connection LIKE '%{password}@%'\")\" -ge 2"
)


def in_nova_api(query: str, value: str) -> str:
    """A check that `query` on the nova_api database returns `value` (run as root where MariaDB runs)."""
    return f"mariadb -N -B nova_api -e {shlex.quote(query)} | grep -qxF {shlex.quote(value)}"


class Nova(ServiceComponent):
    novncproxy_base_url: str
    ready: list[pulumi.Resource]  # the API, conductor and scheduler: compute hosts start after them
    metadata_ready: pulumi.Resource  # the metadata API (Neutron's metadata agent proxies to it)

    def __init__(self, name: str, args: NovaArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:openstack:Nova", name, args.ctx, opts)
        ctx, host, profile = self.ctx, self.host, self.profile
        urls = self.database(["nova_api", "nova", "nova_cell0"], "nova", args.db_password)
        identity = self.register("compute", "OpenStack Compute", PORT, "/v2.1", "nova", args.password)
        self.novncproxy_base_url = f"http://{ctx.public_host}:{NOVNC_PORT}/vnc_auto.html"
        overrides = ctx.service_overrides("nova", host)
        conf_text = pulumi.Output.all(
            urls["nova_api"], urls["nova"], args.transport_url, ctx.auth("nova", args.password),
            ctx.auth("placement", args.placement_password), ctx.auth("neutron", args.network_password),
            args.metadata_secret,
        ).apply(lambda v: nova_conf(profile.name, True, host.address, dict(
            api_database_url=v[0], database_url=v[1], transport_url=v[2], auth=v[3], placement_auth=v[4],
            network_auth=v[5], metadata_secret=v[6], region=ctx.region, glance_url=args.glance_url, novncproxy_base_url=self.novncproxy_base_url), overrides))
        conf = self.secret_config("/etc/nova/nova.conf", conf_text, group="nova")

        # The seeds' order: api_db sync, map_cell0, create_cell cell1, db sync, then list_cells shows both.
        cells = "nova-manage cell_v2 list_cells"
        api_db = self.run_as("api-db-sync", "nova", "nova-manage api_db sync", after=[conf])
        cell0 = self.run_as("cell0", "nova", "nova-manage cell_v2 map_cell0",
                            check=in_nova_api("SELECT name FROM cell_mappings", "cell0"), after=[api_db])
        cell1 = self.run_as("cell1", "nova",
                            f"sh -c '{cells} | grep -qw cell1 || nova-manage cell_v2 create_cell --name=cell1 --verbose'",
                            check=in_nova_api("SELECT name FROM cell_mappings", "cell1"), after=[cell0])
        # The mappings keep the URLs of the day they were made, credentials included: as templates, which Nova
        # fills from nova.conf where it uses them, a rotated RabbitMQ or database password needs no cell update.
        templated = RemoteCommand(f"{self.prefix}-cell-urls", connection=host.connection,
                                  create=as_user("nova", f"sh -ec {shlex.quote(CELL_URLS)}"),
                                  check=CELL_URLS_TEMPLATED, opts=self.after(cell1))
        db_sync = RemoteCommand(
            f"{self.prefix}-db-sync", connection=host.connection,
            create=f"{as_user('nova', 'nova-manage db sync')} && listed=$({as_user('nova', cells)}) && "
                   "echo \"$listed\" | grep -qw cell0 && echo \"$listed\" | grep -qw cell1",
            opts=self.after(templated),
        )

        started = [db_sync, *identity.entities, *args.after]
        apis = {
            step: self.uwsgi_api(step, service, wsgi, port, what, "nova", [conf], args.workers, after=started)
            for step, service, wsgi, port, what in UWSGI_APIS
        }
        daemons = {
            d: platform_service(f"{self.prefix}-{d.removeprefix('nova_')}", host.connection, profile, d,
                                triggers=restarted_on(conf), opts=self.after(*started))
            for d in DAEMONS
        }
        self.ready = [apis["api"], daemons["nova_conductor"], daemons["nova_scheduler"]]
        self.metadata_ready = apis["metadata-api"]
        self.register_outputs({})

    def discover_hosts(self, computes: Sequence[str], after: Sequence[pulumi.Resource]) -> RemoteCommand:
        """`cell_v2 discover_hosts` until every compute host in `computes` is mapped to a cell (a host shows up
        once its nova-compute has registered through the conductor); runs again when the set changes."""
        listed = " && ".join(f"echo \"$hosts\" | grep -qw {shlex.quote(c)}" for c in computes) or "true"
        mapped = f"hosts=$({as_user('nova', 'nova-manage cell_v2 list_hosts')}) && {listed}"
        discover = f"{as_user('nova', 'nova-manage cell_v2 discover_hosts')} >/dev/null && {mapped}"
        return RemoteCommand(
            f"{self.prefix}-discover-hosts", connection=self.host.connection,
            create=wait_until(f"{{ {discover}; }}", 300, "compute hosts " + " ".join(computes) + " in cell1 (each "
                              "needs nova-compute running: see /var/log/nova/nova-compute.log there)"),
            check=" && ".join(in_nova_api("SELECT host FROM host_mappings", c) for c in computes) or "true",
            triggers=sorted(computes),
            opts=self.after(*after),
        )
