"""Platform profiles: what the components call a package, a service or a path, mapped to one distribution's names.

Components speak in logical names ("keystone", "web_server", "mariadb_conf"); a profile turns them into the
distribution's packages, systemd units and paths. The seeds' RDO/CentOS platform (yum, httpd,
openstack-keystone, mod_wsgi) is one more Profile here, not a change to any component.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Profile:
    name: str
    # OpenStack releases this platform's repositories ship, mapped to the OS release that ships them.
    releases: Mapping[str, str]
    # Installs the packages named after it, non-interactively, without starting their services.
    install_command: str
    # Removes them (the undo of an install).
    remove_command: str
    # Runs after an install: what the denied service starts would have done for the system's own daemons.
    after_install: str
    # Prints "NAME STATUS" for each package in {packages} the system knows ("installed" when it is).
    installed_query: str
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    # Files a service's unit reads before it starts, by logical service: {service: (path, content)}.
    unit_defaults: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Shell that enables / disables a web site file written to paths["web_site"] (empty where a file is enough).
    enable_site: str = ""
    disable_site: str = ""
    site_enabled: str = ""  # succeeds while the site is enabled
    # Shell that disables the web server's packaged default site, puts it back (the undo), and succeeds while it
    # is disabled (all empty where the platform enables none).
    disable_default_site: str = ""
    enable_default_site: str = ""
    default_site_disabled: str = ""
    # What one OpenStack release of this platform has beyond the rest (keyed by release): packages and services
    # merged over the platform's own. A component never asks which release it runs: it asks the profile.
    by_release: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def for_release(self, release: str) -> "Profile":
        """This platform's names for `release`: its own, with the release's additions merged over them."""
        extra = self.by_release.get(release, {})
        return replace(self, **{name: {**getattr(self, name), **values} for name, values in extra.items()},
                       by_release={})

    def has_service(self, logical: str) -> bool:
        return logical in self.services

    def package_set(self, *logical: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for name in logical:
            for package in self.packages[name]:
                seen.setdefault(package)
        return tuple(seen)

    def service(self, logical: str) -> str:
        return self.services[logical]

    def path(self, logical: str, **names: str) -> str:
        return self.paths[logical].format(**names)


# Debian's own way to keep maintainer scripts from starting services before they are configured
# (lab notes: unconfigured OpenStack services crash-loop and starve a small machine).
_NO_STARTS = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d"
_APT = "apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
# A run cut short (this program's or an operator's) may have left dpkg half-done: finish it, and let apt mend what it
# left (with no package named: apt refuses to install or remove anything else while dependencies are broken).
_MEND = f"dpkg --configure -a && {_APT} --no-install-recommends --fix-broken install"

DEBIAN = Profile(
    name="debian",
    # Debian 13 (trixie) ships OpenStack 2025.1 "Epoxy" in its main archive (the default: the first), Debian 12
    # (bookworm) Zed. Both deploy from the same packages, units, paths and templates (measured: README, "Releases").
    releases={"2025.1": "trixie", "zed": "bookworm"},
    install_command=(
        f"{_NO_STARTS} && trap 'rm -f /usr/sbin/policy-rc.d' EXIT && "
        "export DEBIAN_FRONTEND=noninteractive && "
        f"(apt-get -q update || apt-get -q update) && {_MEND} && "
        # Without recommends: they bring the compute hosts a kernel image (guestmount -> supermin) and every
        # QEMU architecture (libvirt -> qemu-system), neither of which Nova uses.
        f"{_APT} --no-install-recommends install"
    ),
    # policy-rc.d also denied the maintainer scripts' `invoke-rc.d dbus reload`: without it D-Bus ignores the
    # bus policies the new packages brought, and polkit (which libvirt asks) cannot take its bus name.
    after_install="systemctl try-reload-or-restart dbus",
    remove_command=f"export DEBIAN_FRONTEND=noninteractive && {_MEND} && {_APT} purge",
    installed_query="dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' {packages} 2>/dev/null || true",
    packages={
        "mariadb": ("mariadb-server", "python3-pymysql", "socat"),
        "rabbitmq": ("rabbitmq-server",),
        "memcached": ("memcached", "python3-memcache"),
        "web_server": ("apache2", "libapache2-mod-wsgi-py3"),
        "keystone": ("keystone", "python3-openstackclient", "curl"),
        "client": ("python3-openstackclient",),
        "glance": ("glance-api",),
        "placement": ("placement-api", "python3-osc-placement"),
        "nova_controller": ("nova-api", "nova-conductor", "nova-scheduler", "nova-consoleproxy"),
        # -kvm pulls only the x86 emulator (qemu-system would pull every architecture); virt_type is ours.
        "nova_compute": ("nova-compute", "nova-compute-kvm", "curl"),
        # Debian runs Neutron's API under uwsgi (neutron-api) and its RPC workers apart (neutron-rpc-server).
        "neutron_server": ("neutron-api", "neutron-rpc-server"),
        "neutron_network_node": ("neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent"),
        "neutron_ovs_agent": ("neutron-openvswitch-agent", "openvswitch-switch"),
        # Without -apache: that package's site puts the dashboard on every virtual host, Keystone's included.
        # pymemcache: Django's memcached backend (python-memcache's was removed in Django 4.1).
        "dashboard": ("openstack-dashboard", "python3-pymemcache"),
    },
    services={
        "mariadb": "mariadb",
        "rabbitmq": "rabbitmq-server",
        # Erlang's port mapper, socket-activated (rabbitmq-server.service wants the socket).
        "epmd_socket": "epmd.socket",
        "epmd": "epmd.service",
        "memcached": "memcached",
        "web_server": "apache2",
        # Debian runs Keystone under uwsgi in its own unit; the seeds serve it from Apache instead.
        "keystone_standalone": "keystone",
        "glance_api": "glance-api",
        # Debian runs Placement under uwsgi; the seeds serve it from Apache.
        "placement_standalone": "placement-api",
        "nova_api": "nova-api",
        # Debian's nova-api package also brings (and enables) the metadata API, under uwsgi on 8775.
        "nova_api_metadata": "nova-api-metadata",
        "nova_scheduler": "nova-scheduler",
        "nova_conductor": "nova-conductor",
        "nova_novncproxy": "nova-novncproxy",
        "nova_compute": "nova-compute",
        "libvirt": "libvirtd",
        "libvirt_guests": "libvirt-guests",
        "neutron_api": "neutron-api",
        "neutron_rpc_server": "neutron-rpc-server",
        "neutron_dhcp_agent": "neutron-dhcp-agent",
        "neutron_l3_agent": "neutron-l3-agent",
        "neutron_metadata_agent": "neutron-metadata-agent",
        "neutron_openvswitch_agent": "neutron-openvswitch-agent",
        "openvswitch": "openvswitch-switch",
        # Brought by the agents' packages and enabled there; the agents run their own instances of each
        # (per router or network, in its namespace), so the system-wide units are masked.
        "keepalived": "keepalived",
        "radvd": "radvd",
        "haproxy": "haproxy",
    },
    paths={
        "mariadb_conf": "/etc/mysql/mariadb.conf.d/99-openstack.cnf",
        "mariadb_socket": "/run/mysqld/mysqld.sock",
        "rabbitmq_env": "/etc/rabbitmq/rabbitmq-env.conf",
        "epmd_socket_dropin": "/etc/systemd/system/epmd.socket.d/openstack-deploy.conf",
        "memcached_conf": "/etc/memcached.conf",
        "web_site": "/etc/apache2/sites-available/{site}.conf",
        "web_server_name": "/etc/apache2/conf-available/servername.conf",
        "wsgi_scripts": "/usr/bin",
        "web_log_dir": "/var/log/apache2",
        # Debian's file has `Listen 80` (and 443 with mod_ssl), every address; apache2.conf requires it (Include).
        "web_ports_conf": "/etc/apache2/ports.conf",
        # Debian's nova-api runs under uwsgi with this ini (16 workers by default: too many for a small host).
        "nova_api_uwsgi": "/etc/nova/nova-api-uwsgi.ini",
        "nova_api_metadata_uwsgi": "/etc/nova/nova-api-metadata-uwsgi.ini",  # 8 processes x 32 threads
        # Sourced by the APIs' init scripts after they build uwsgi's arguments (with a socket on every address).
        "nova_api_defaults": "/etc/default/nova-api",
        "nova_api_metadata_defaults": "/etc/default/nova-api-metadata",
        "libvirt_qemu_conf": "/etc/libvirt/qemu.conf",
        "neutron_api_uwsgi": "/etc/neutron/neutron-api-uwsgi.ini",
        # neutron-api's init script is named after neutron-server (NAME=neutron-server) and sources this file.
        "neutron_api_defaults": "/etc/default/neutron-server",
        "neutron_conf": "/etc/neutron/neutron.conf",
        "neutron_ml2_conf": "/etc/neutron/plugins/ml2/ml2_conf.ini",
        "neutron_ovs_conf": "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
        "neutron_dhcp_conf": "/etc/neutron/dhcp_agent.ini",
        "neutron_l3_conf": "/etc/neutron/l3_agent.ini",
        "neutron_metadata_conf": "/etc/neutron/metadata_agent.ini",
        # The package's postinst copies an example here when it is missing; Django reads it first, then the
        # snippets in local_settings.d (Debian's own set a local-memory cache, a web root, debug off...).
        "dashboard_local_settings": "/etc/openstack-dashboard/local_settings.py",
        "dashboard_settings": "/etc/openstack-dashboard/local_settings.d/_9999_openstack_deploy.py",
        "dashboard_manage": "/usr/share/openstack-dashboard/manage.py",
        "dashboard_wsgi_dir": "/usr/share/openstack-dashboard",  # wsgi.py
        "dashboard_static": "/var/lib/openstack-dashboard/static",  # collectstatic's STATIC_ROOT
    },
    unit_defaults={
        # Debian's console proxy package starts the SPICE proxy unless told otherwise (its debconf default).
        "nova_novncproxy": ("/etc/default/nova-consoleproxy",
                            "# Managed by openstack-deploy\nNOVA_CONSOLE_PROXY_TYPE=novnc\nNOVA_SERIAL_PROXY_START=false\n"),
    },
    enable_site="a2enmod -q wsgi && a2enconf -q servername && a2ensite -q {site}",
    disable_site="a2dissite -q {site}",
    site_enabled="apache2ctl -M 2>/dev/null | grep -q wsgi_module && test -e /etc/apache2/sites-enabled/{site}.conf",
    # Debian's postinst enables 000-default (port 80) on a fresh install; a2dissite fails only if the file is gone.
    disable_default_site="a2dissite -q 000-default || true",
    enable_default_site="a2ensite -q 000-default || true",
    default_site_disabled="test ! -e /etc/apache2/sites-enabled/000-default.conf",
    by_release={
        # Neutron 2025.1 under uwsgi runs its periodic tasks (agent liveness, rescheduling) in a daemon of their
        # own; Zed's neutron-rpc-server runs them itself.
        "2025.1": {
            "packages": {"neutron_server": ("neutron-api", "neutron-rpc-server", "neutron-periodic-workers")},
            "services": {"neutron_periodic_workers": "neutron-periodic-workers"},
        },
    },
)

PROFILES: Mapping[str, Profile] = {p.name: p for p in (DEBIAN,)}
