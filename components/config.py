"""The typed stack configuration: parsed and validated before any resource is registered.

`parse` is pure: it takes the stack's config values (as Pulumi hands them to the program) and returns a
frozen `CloudConfig`, or raises `ConfigError` with one line that names the offending key and host.
A key asking for what is not implemented yet (a `vip`, several controllers, an SSH user other than root) is
rejected, not ignored: every key the parser accepts does what it says.
`load` reads the values from the running Pulumi program and calls `parse`.

Every value is checked whole for what it is (a host name, a region, a password, an address, a port, an INI name
or value...), with the type the operator wrote: a string where a string belongs, a number or a boolean where one
does (YAML's `port: true` or an unquoted password of digits is an error, never converted). What is accepted is
also written safely wherever it goes (components/render.py escapes each file's values by its syntax; shell
arguments are quoted or sent on stdin; URLs percent-encoded); what no file or tool could carry exactly is
rejected here, with the reason. README, "Stack config: names and passwords".
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

from . import render
from .profiles import PROFILES, Profile
from .providers import lab as labp
from .providers import ssh as sshp

PROJECT = "openstack-deploy"

ROLES = ("controller", "compute")
VIRT_TYPES = ("auto", "kvm", "qemu")
# Services whose rendered INI files take overrides: {service: {section: {option: value}}}.
SERVICES = ("keystone", "glance", "placement", "nova", "neutron", "horizon")
# Every generated password in one place (kolla's passwords.yml). A stack may set any of them as a
# secret in `passwords`; the rest are generated once and kept, encrypted, in the stack's state.
PASSWORDS = (
    "rabbitmq",
    "keystone_admin",
    "keystone_db",
    "glance_db",
    "glance_user",
    "placement_db",
    "placement_user",
    "nova_db",
    "nova_user",
    "neutron_db",
    "neutron_user",
    "metadata_secret",
    "horizon_secret_key",
)
OBJECT_KEYS = ("hosts", "ssh", "passwords", "overrides", "lab", "deadlines", "providerNetwork", "postDeploy")
STEP_KINDS = ("command", "packages", "file")  # `deadlines` (seconds) by kind of remote step
SCALAR_KEYS = ("platform", "release", "region", "managementCidr", "virtType", "vip")
_HOST_KEY = re.compile(r"\A(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\n]*)?\Z")
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # one DNS label, lower case
# Names every Debian host already resolves to itself: a host by that name would be reached at loopback.
_LOCAL_NAMES = ("localhost", "ip6-localhost", "ip6-loopback", "ip6-allnodes", "ip6-allrouters")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # Keystone's region IDs are at most 255 characters
_INI_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a section or option name, read back by oslo.config as written
_BRIDGE = re.compile(r"[a-z][a-z0-9]{0,14}")
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # a Linux interface name (at most 15 characters)
LAB_PROVIDER_INTERFACE = "eth1"  # the lab's second interface in every node, on its provider bridge
_MACHINE = re.compile(r"[A-Za-z0-9-]{1,64}")  # systemd-nspawn's machine names (and so the lab's stack names)
PASSWORD_BYTES = 72  # bcrypt, Keystone's password hash, reads no further


class ConfigError(pulumi.RunError):
    """A stack configuration mistake; Pulumi prints it as one line, without a traceback."""


@dataclass(frozen=True)
class Secret:
    """A secret config value: never shown by repr/str, turned into a secret Output where it is used."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "[secret]"

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.value)


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    roles: tuple[str, ...]
    # Per-host service overrides, merged over the stack-wide ones: {service: {section: {option: value}}}.
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    # The host's SSH key ("ssh-ed25519 AAAA..."), pinned; without it the key met at first contact is.
    host_key: Optional[str] = None
    # The interface that carries the flat provider network (never the management one); without it the host has
    # self-service (VXLAN) networks only.
    provider_interface: Optional[str] = None

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class SshSpec:
    user: str = "root"  # the only one parse accepts: nothing runs through sudo
    port: int = 22
    private_key: Optional[Secret] = None  # from privateKey (a secret) or read from privateKeyFile
    dial_timeout: int = 120  # seconds spent retrying the first connection to a host


@dataclass(frozen=True)
class LabSpec:
    """A lab of local systemd-nspawn nodes (see components/lab.py); its nodes become the stack's hosts."""

    suite: str  # the nodes' Debian suite: the OS release that ships the stack's OpenStack release
    bridge: str = "osdlab0"
    # Disposable nodes skip every undo on destroy (their disks go with them); `disposable: false` makes them
    # behave like an operator's hosts, where every undo runs.
    disposable: bool = True
    # The bridge on this machine that carries the provider network (with its gateway address), when the stack
    # has one: every node gets a second interface on it.
    provider_bridge: Optional[str] = None


@dataclass(frozen=True)
class ProviderNetwork:
    """The flat network outside the cloud that servers and routers reach (floating IPs come from it)."""

    cidr: ipaddress.IPv4Network
    gateway: str
    pool: tuple[str, str]  # the addresses Neutron hands out on it (routers' gateways, floating IPs, ports)
    physical_network: str = "provider"  # Neutron's name for it (ml2 flat_networks, the agents' mappings)


@dataclass(frozen=True)
class PostDeploy:
    """What the install guide's "launch an instance" makes first (components/post_deploy.py)."""

    self_service_cidr: ipaddress.IPv4Network


@dataclass(frozen=True)
class CloudConfig:
    profile: Profile
    release: str
    region: str
    management_cidr: ipaddress.IPv4Network
    virt_type: str
    ssh: SshSpec
    hosts: tuple[HostSpec, ...]
    passwords: Mapping[str, Secret]
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]]
    lab: Optional[LabSpec] = None
    # How long a remote step of each kind may run, in seconds ({kind: seconds}); the rest keep their defaults
    # (DEADLINES in components/providers/remote.py).
    deadlines: Mapping[str, int] = field(default_factory=dict)
    provider_network: Optional[ProviderNetwork] = None
    post_deploy: Optional[PostDeploy] = None
    # Always None: parse rejects `vip` until high availability is implemented; the endpoints fall back to
    # the controller's address.
    vip: Optional[str] = None

    @property
    def os_release(self) -> str:
        """The OS release (codename, e.g. bookworm) every host must run: the one that ships `release`."""
        return self.profile.releases[self.release]

    def with_role(self, role: str) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.has(role))

    @property
    def controller(self) -> HostSpec:
        """The controller that runs one-off steps (db syncs, bootstrap); parse allows exactly one for now."""
        return self.with_role("controller")[0]

    def bridge_address(self) -> str:
        """The lab host's own address on the lab bridge: the first address of the management subnet."""
        return str(next(self.management_cidr.hosts()))


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{_key(key)}: {message}")


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _only(value: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    for k in value:
        if k not in allowed:
            raise _fail(f"{key}.{k}", f"unknown key (allowed: {', '.join(allowed)})")


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            type(None): "empty"}.get(type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__)


def _string(value: Any, key: str) -> str:
    """A string exactly as written: YAML's unquoted `true`, `0123` or `1.10` is not silently made one."""
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, got {_kind(value)} (quote it in YAML)")
    return value


def _integer(value: Any, key: str, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:  # (a bool is an int to Python: not here)
        shown = repr(value) if type(value) in (int, float, str) else _kind(value)
        raise _fail(key, f"{shown} is not {what} (a whole number from {low} to {high})")
    return value


def _one_line(value: str, key: str, what: str = "") -> str:
    if not value.isprintable():
        raise _fail(key, f"{what}contains a line break, tab or other control character: no config file can hold it "
                         "on one line")
    return value


def _ini_value(value: Any, key: str) -> Any:
    if isinstance(value, str):
        return _one_line(value, key)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(key, f"{value!r} is not a finite number")
    if not isinstance(value, (bool, int, float)):
        raise _fail(key, f"must be a string, number or boolean, got {_kind(value)}")
    return value


def _overrides(value: Any, key: str) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    services = _mapping(value, key)
    for service, sections in services.items():
        if service not in SERVICES:
            raise _fail(f"{key}.{service}", f"unknown service (known: {', '.join(SERVICES)})")
        for section, options in _mapping(sections, f"{key}.{service}").items():
            if service == "horizon":
                _dashboard_settings(section, options, f"{key}.{service}")
                continue
            if not _INI_NAME.fullmatch(section):
                raise _fail(f"{key}.{service}.{section!r}", "is not an INI section name (letters, digits, _.-)")
            for option, v in _mapping(options, f"{key}.{service}.{section}").items():
                if not _INI_NAME.fullmatch(option):
                    raise _fail(f"{key}.{service}.{section}.{option!r}", "is not an option name (letters, digits, _.-)")
                _ini_value(v, f"{key}.{service}.{section}.{option}")
    return services


def _dashboard_settings(section: str, options: Any, key: str) -> None:
    """The dashboard's overrides are Django settings, not INI options: `horizon: {local_settings: {NAME: value}}`."""
    if section != "local_settings":
        raise _fail(f"{key}.{section!r}", "the dashboard's overrides go under local_settings (Django settings)")
    for name, v in _mapping(options, f"{key}.{section}").items():
        if not render.SETTING_NAME.fullmatch(name):
            raise _fail(f"{key}.{section}.{name!r}", "is not a Django setting name (upper-case letters, digits, _)")
        _ini_value(v, f"{key}.{section}.{name}")


def _host_name(value: Any, key: str) -> str:
    name = _string(value, key)
    if not _HOSTNAME.fullmatch(name):
        raise _fail(key, f"{name!r} is not a valid host name (lower-case letters, digits, '-'; at most 63)")
    if name in _LOCAL_NAMES:
        raise _fail(key, f"{name!r} names this host itself in every /etc/hosts: choose the host's own name")
    try:
        socket.inet_aton(name)
    except OSError:
        return name
    raise _fail(key, f"{name!r} reads as an IPv4 address (as {socket.inet_ntoa(socket.inet_aton(name))}) to the "
                     "resolver: use a name with a letter that is not one")


def _password(value: Any, key: str) -> str:
    """A password every part of the cloud takes as it is (MariaDB, RabbitMQ, Keystone, the INI files, the URLs,
    admin-openrc, clouds.yaml); the messages never show it."""
    if _string(value, key) == "":
        raise _fail(key, "must not be empty (remove it to have one generated)")
    _one_line(value, key, "is not one line of text: it ")
    if value != value.strip():
        raise _fail(key, "starts or ends with a space: tools that read passwords a line at a time drop them")
    if len(value.encode()) > PASSWORD_BYTES:
        raise _fail(key, f"is longer than {PASSWORD_BYTES} bytes: Keystone's bcrypt hash ignores the rest")
    return value


def _ipv4(value: Any, key: str) -> str:
    text = _string(value, key)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise _fail(key, f"{text!r} is not an IPv4 address") from None


def _cidr(value: Any, key: str, what: str = "a management subnet") -> ipaddress.IPv4Network:
    text = _string(value, key)
    try:
        cidr = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise _fail(key, f"{text!r} is not a network: {e}") from None
    if not 8 <= cidr.prefixlen <= 30:
        raise _fail(key, f"{cidr}: {what} is from /8 to /30 (room for the hosts and no more)")
    if cidr.is_loopback or cidr.is_multicast or cidr.is_link_local or cidr.is_reserved or cidr.is_unspecified:
        raise _fail(key, f"{cidr} is not a subnet hosts can have addresses in (loopback, link-local, multicast or "
                         "reserved)")
    return cidr


def _private_key(text: str, key: str) -> Secret:
    try:
        sshp.load_key(text)
    except sshp.SshError as e:
        raise _fail(key, str(e).removeprefix("the SSH private key ")) from None
    return Secret(text)


def _ssh(value: Any, lab: bool) -> SshSpec:
    ssh = _mapping(value, "ssh")
    if lab:  # the lab reaches its nodes as root on port 22 with a key of its own: nothing else would be used
        _only(ssh, ("dialTimeout",), "ssh")
    _only(ssh, ("user", "port", "privateKey", "privateKeyFile", "dialTimeout"), "ssh")
    user = _string(ssh.get("user", "root"), "ssh.user")
    if user != "root":
        raise _fail("ssh.user", f"{user!r}: only root is supported (sudo is not implemented)")
    port = _integer(ssh.get("port", 22), "ssh.port", 1, 65535, "a TCP port")
    timeout = _integer(ssh.get("dialTimeout", 120), "ssh.dialTimeout", 1, 3600, "a number of seconds")
    if "privateKey" in ssh and "privateKeyFile" in ssh:
        raise _fail("ssh", "set privateKey or privateKeyFile, not both")
    key: Optional[Secret] = None
    if "privateKeyFile" in ssh:
        path = os.path.expanduser(_string(ssh["privateKeyFile"], "ssh.privateKeyFile"))
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise _fail("ssh.privateKeyFile", f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise _fail("ssh.privateKeyFile", f"{path} is not a text file (an OpenSSH or PEM private key)") from None
        key = _private_key(text, "ssh.privateKeyFile")
    elif "privateKey" in ssh:
        key = _private_key(_string(ssh["privateKey"], "ssh.privateKey"), "ssh.privateKey")
    elif not lab:
        raise _fail("ssh", "privateKey or privateKeyFile is required")
    return SshSpec(user=user, port=port, private_key=key, dial_timeout=timeout)


def _hosts(value: Any, cidr: ipaddress.IPv4Network, reserved: Optional[str],
           lab_stack: Optional[str]) -> tuple[HostSpec, ...]:
    """`lab_stack`: in a lab, the stack whose name the nodes' machine names carry."""
    if not isinstance(value, list) or not value:
        raise _fail("hosts", "must be a non-empty list of hosts")
    hosts: list[HostSpec] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
    for i, item in enumerate(value):
        key = f"hosts[{i}]"
        item = _mapping(item, key)
        _only(item, ("name", "address", "roles", "overrides", "hostKey", "providerInterface"), key)
        if "name" not in item:
            raise _fail(f"{key}.name", "is required")
        name = _host_name(item["name"], f"{key}.name")
        key = f"hosts[{i}] ({name})"
        machine = labp.machine_name(lab_stack, name) if lab_stack else None
        if machine and not _MACHINE.fullmatch(machine):
            raise _fail(f"{key}.name", f"the lab's machine name {machine!r} is longer than "
                                       "systemd-nspawn allows (64): shorten the host or the stack name")
        if name in names:
            raise _fail(key, f"duplicate host name {name!r} (also hosts[{names[name]}])")
        names[name] = i
        if "address" not in item:
            raise _fail(f"{key}.address", "is required")
        address = _ipv4(item["address"], f"{key}.address")
        if ipaddress.IPv4Address(address) not in cidr:
            raise _fail(f"{key}.address", f"{address} is outside managementCidr {cidr}")
        if ipaddress.IPv4Address(address) in (cidr.network_address, cidr.broadcast_address):
            which = "network" if address == str(cidr.network_address) else "broadcast"
            raise _fail(f"{key}.address", f"{address} is the {which} address of managementCidr {cidr}, not a host's")
        if address == reserved:
            raise _fail(f"{key}.address", f"{address} is reserved for the lab host's bridge")
        if address in addresses:
            raise _fail(f"{key}.address", f"duplicate address {address} (also host {addresses[address]})")
        addresses[address] = name
        roles = item.get("roles")
        if not isinstance(roles, list) or not roles:
            raise _fail(f"{key}.roles", f"must be a non-empty list of roles ({', '.join(ROLES)})")
        for role in roles:
            if not isinstance(role, str) or role not in ROLES:
                raise _fail(f"{key}.roles", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        overrides = _overrides(item.get("overrides", {}), f"{key}.overrides")
        host_key = item.get("hostKey")
        if host_key is not None and not (isinstance(host_key, str) and _HOST_KEY.match(host_key)):
            raise _fail(f"{key}.hostKey", "is not an SSH public key line (\"ssh-ed25519 AAAA...\", as ssh-keyscan prints)")
        provider = None
        if "providerInterface" in item:
            if lab_stack:
                raise _fail(f"{key}.providerInterface", f"a lab node's provider interface is the lab's own "
                                                        f"({LAB_PROVIDER_INTERFACE}): remove the key")
            provider = _string(item["providerInterface"], f"{key}.providerInterface")
            if not _INTERFACE.fullmatch(provider):
                raise _fail(f"{key}.providerInterface", f"{provider!r} is not an interface name (at most 15 letters, "
                                                        "digits, _.-)")
        hosts.append(HostSpec(name=name, address=address, roles=tuple(dict.fromkeys(roles)), overrides=overrides,
                              host_key=" ".join(host_key.split()[:2]) if host_key else None,
                              provider_interface=provider))
    return tuple(hosts)


def _passwords(value: Any) -> Mapping[str, Secret]:
    passwords = _mapping(value, "passwords")
    out: dict[str, Secret] = {}
    for name, secret in passwords.items():
        if name not in PASSWORDS:
            raise _fail(f"passwords.{name}", "unknown password name (see PASSWORDS in components/config.py)")
        out[name] = Secret(_password(secret, f"passwords.{name}"))
    return out


def _deadlines(value: Any) -> Mapping[str, int]:
    deadlines = _mapping(value, "deadlines")
    _only(deadlines, STEP_KINDS, "deadlines")
    return {kind: _integer(seconds, f"deadlines.{kind}", 1, 86400, "a number of seconds")
            for kind, seconds in deadlines.items()}


def _provider_network(value: Any, management: ipaddress.IPv4Network) -> ProviderNetwork:
    spec = _mapping(value, "providerNetwork")
    _only(spec, ("cidr", "gateway", "pool"), "providerNetwork")
    if "cidr" not in spec:
        raise _fail("providerNetwork.cidr", "is required (the provider network's subnet)")
    cidr = _cidr(spec["cidr"], "providerNetwork.cidr", "a provider network")
    if cidr.overlaps(management):
        raise _fail("providerNetwork.cidr", f"{cidr} overlaps managementCidr {management}")
    gateway = _ipv4(spec.get("gateway", str(next(cidr.hosts()))), "providerNetwork.gateway")
    if ipaddress.IPv4Address(gateway) not in cidr or gateway in (str(cidr.network_address), str(cidr.broadcast_address)):
        raise _fail("providerNetwork.gateway", f"{gateway} is not a host address of {cidr}")
    hosts = list(cidr.hosts())
    pool = _mapping(spec.get("pool", {}), "providerNetwork.pool")
    _only(pool, ("start", "end"), "providerNetwork.pool")
    start = _ipv4(pool.get("start", str(hosts[len(hosts) // 2])), "providerNetwork.pool.start")
    end = _ipv4(pool.get("end", str(hosts[-1])), "providerNetwork.pool.end")
    for key, address in (("start", start), ("end", end)):
        if ipaddress.IPv4Address(address) not in hosts:
            raise _fail(f"providerNetwork.pool.{key}", f"{address} is not a host address of {cidr}")
    if ipaddress.IPv4Address(start) > ipaddress.IPv4Address(end):
        raise _fail("providerNetwork.pool", f"starts at {start}, after its end {end}")
    if ipaddress.IPv4Address(start) <= ipaddress.IPv4Address(gateway) <= ipaddress.IPv4Address(end):
        raise _fail("providerNetwork.pool", f"{start}-{end} holds the gateway {gateway}")
    return ProviderNetwork(cidr=cidr, gateway=gateway, pool=(start, end))


def _post_deploy(value: Any, provider: Optional[ProviderNetwork], management: ipaddress.IPv4Network) -> PostDeploy:
    spec = _mapping(value, "postDeploy")
    _only(spec, ("selfServiceCidr",), "postDeploy")
    if provider is None:
        raise _fail("postDeploy", "needs providerNetwork (the router's gateway and the floating IPs are on it)")
    cidr = _cidr(spec.get("selfServiceCidr", "172.16.1.0/24"), "postDeploy.selfServiceCidr", "a self-service subnet")
    for other, key in ((provider.cidr, "providerNetwork.cidr"), (management, "managementCidr")):
        if cidr.overlaps(other):
            raise _fail("postDeploy.selfServiceCidr", f"{cidr} overlaps {key} {other}")
    return PostDeploy(self_service_cidr=cidr)


def _bridge(value: Any, key: str) -> str:
    bridge = _string(value, key)
    if not _BRIDGE.fullmatch(bridge):
        raise _fail(key, f"{bridge!r} is not a valid interface name (at most 15 lower-case letters/digits)")
    return bridge


def _lab(value: Any, release: str, os_release: str, provider: bool) -> LabSpec:
    lab = _mapping(value, "lab")
    _only(lab, ("bridge", "providerBridge", "suite", "disposable"), "lab")
    bridge = _bridge(lab.get("bridge", LabSpec.bridge), "lab.bridge")
    provider_bridge = _bridge(lab.get("providerBridge", f"{bridge}p"), "lab.providerBridge") if provider else None
    if "providerBridge" in lab and not provider:
        raise _fail("lab.providerBridge", "the stack has no providerNetwork for it to carry")
    if provider_bridge == bridge:
        raise _fail("lab.providerBridge", f"{bridge!r} is the management bridge (lab.bridge)")
    suite = _string(lab.get("suite", os_release), "lab.suite")
    if suite != os_release:
        raise _fail("lab.suite", f"{suite!r} does not ship release {release} ({release} is on {os_release})")
    disposable = lab.get("disposable", True)
    if not isinstance(disposable, bool):
        raise _fail("lab.disposable", f"{disposable!r} is not true or false")
    return LabSpec(suite=suite, bridge=bridge, disposable=disposable, provider_bridge=provider_bridge)


def parse(raw: Mapping[str, Any], stack: str = "lab") -> CloudConfig:
    """Validates the stack's config values (keys without the project prefix) into a CloudConfig. `stack`: the
    stack's name (a lab's machine names carry it)."""
    for k in raw:
        if k not in OBJECT_KEYS + SCALAR_KEYS:
            raise _fail(k, f"unknown key (known: {', '.join(SCALAR_KEYS + OBJECT_KEYS)})")

    platform = _string(raw.get("platform", "debian"), "platform")
    profile = PROFILES.get(platform)
    if profile is None:
        raise _fail("platform", f"unknown platform {platform!r} (known: {', '.join(PROFILES)})")
    release = _string(raw.get("release", next(iter(profile.releases))), "release")
    if release not in profile.releases:
        raise _fail("release", f"{release!r} is not shipped by platform {platform} (available: {', '.join(profile.releases)})")
    region = _string(raw.get("region", "RegionOne"), "region")
    if not _REGION.fullmatch(region):
        raise _fail("region", f"{region[:60]!r} is not a valid region id (letters, digits, _.-; at most 255)")
    virt_type = _string(raw.get("virtType", "auto"), "virtType")
    if virt_type not in VIRT_TYPES:
        raise _fail("virtType", f"{virt_type!r} is not one of {', '.join(VIRT_TYPES)}")

    if "managementCidr" not in raw:
        raise _fail("managementCidr", "is required (the subnet of the hosts' management addresses)")
    cidr = _cidr(raw["managementCidr"], "managementCidr")

    if "vip" in raw:
        raise _fail("vip", "not supported yet: high availability behind a VIP is not implemented (one controller only)")
    provider = _provider_network(raw["providerNetwork"], cidr) if "providerNetwork" in raw else None
    lab = _lab(raw["lab"], release, profile.releases[release], provider is not None) if "lab" in raw else None
    bridge_address = str(next(cidr.hosts())) if lab else None
    ssh = _ssh(raw.get("ssh", {}), lab=lab is not None)
    if "hosts" not in raw:
        raise _fail("hosts", "is required")
    if lab and not _MACHINE.fullmatch(labp.machine_name(stack, "")):
        raise _fail("lab", f"the stack name {stack!r} cannot name the lab's machines (letters, digits, '-')")
    hosts = _hosts(raw["hosts"], cidr, bridge_address, stack if lab else None)
    if lab and provider:  # every node gets the lab's second interface, on the provider bridge
        hosts = tuple(dataclasses.replace(h, provider_interface=LAB_PROVIDER_INTERFACE) for h in hosts)
    controllers = [h.name for h in hosts if h.has("controller")]
    if not controllers:
        raise _fail("hosts", "no host has the controller role")
    if len(controllers) > 1:
        raise _fail("hosts", f"{len(controllers)} controllers ({', '.join(controllers)}): high availability is not "
                             "implemented yet; give exactly one host the controller role")
    if not any(h.has("compute") for h in hosts):
        raise _fail("hosts", "no host has the compute role")

    return CloudConfig(
        profile=profile.for_release(release),
        release=release,
        region=region,
        management_cidr=cidr,
        virt_type=virt_type,
        ssh=ssh,
        hosts=hosts,
        passwords=_passwords(raw.get("passwords", {})),
        overrides=_overrides(raw.get("overrides", {}), "overrides"),
        lab=lab,
        deadlines=_deadlines(raw.get("deadlines", {})),
        provider_network=provider,
        post_deploy=_post_deploy(raw["postDeploy"], provider, cidr) if "postDeploy" in raw else None,
    )


def _decode(key: str, value: Any) -> Any:
    if key in OBJECT_KEYS and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _fail(key, "must be a YAML mapping or list, not a string") from None
    return value


def load() -> CloudConfig:
    """Reads this project's keys from the running program's stack config and validates them; a key of another
    namespace (a misspelt `openstak-deploy:`, or a provider's, which this program's explicit providers never
    read) is an error too. A lab needs a Debian archive in the machine's own apt sources (the nodes' mirror)."""
    from pulumi.runtime import config as runtime_config

    prefix = f"{PROJECT}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    for k in sorted(keys):
        namespace = k.split(":", 1)[0]
        if namespace not in (PROJECT, "pulumi"):
            raise ConfigError(f"{k}: unknown namespace {namespace!r}: this program reads only {prefix}* keys")
    raw = {
        k[len(prefix):]: _decode(k[len(prefix):], runtime_config.get_config(k))
        for k in sorted(keys)
        if k.startswith(prefix)
    }
    cfg = parse(raw, pulumi.get_stack())
    if cfg.lab and not labp.debian_sources(labp.host_apt_sources(), cfg.lab.suite):
        raise _fail("lab.suite", f"{cfg.lab.suite!r}: this machine's apt sources name no Debian archive, so the lab has "
                                 "no mirror to build its nodes from")
    return cfg


# The language host's exit code for "the program has already shown the user what is wrong": Pulumi then
# stops without adding its generic "program exited with non-zero exit code" line.
_EXIT_AFTER_USER_MESSAGE = 32


def load_or_exit() -> CloudConfig:
    """`load`, for the program's entry point: a mistake is reported as one error line and the run ends."""
    try:
        return load()
    except ConfigError as e:
        pulumi.log.error(str(e))
        sys.exit(_EXIT_AFTER_USER_MESSAGE)
