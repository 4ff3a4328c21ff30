"""The typed stack configuration: parsed and validated before any resource is registered.

`parse` is pure: it takes the stack's config values (as Pulumi hands them to the program) and returns a
frozen `CloudConfig`, or raises `ConfigError` with one line that names the offending key and host.
A key asking for what is not implemented yet (a `vip`, several controllers, an SSH user other than root) is
rejected, not ignored: every key the parser accepts does what it says.
`load` reads the values from the running Pulumi program and calls `parse`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

from .profiles import PROFILES, Profile

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
OBJECT_KEYS = ("hosts", "ssh", "passwords", "overrides", "lab")
SCALAR_KEYS = ("platform", "release", "region", "managementCidr", "virtType", "vip")
_HOST_KEY = re.compile(r"\A(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\n]*)?\Z")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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


def _overrides(value: Any, key: str) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    services = _mapping(value, key)
    for service, sections in services.items():
        if service not in SERVICES:
            raise _fail(f"{key}.{service}", f"unknown service (known: {', '.join(SERVICES)})")
        for section, options in _mapping(sections, f"{key}.{service}").items():
            for option, v in _mapping(options, f"{key}.{service}.{section}").items():
                if isinstance(v, (Mapping, list)) or v is None:
                    raise _fail(f"{key}.{service}.{section}.{option}", "must be a string, number or boolean")
    return services


def _ipv4(value: Any, key: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise _fail(key, f"{value!r} is not an IPv4 address") from None


def _ssh(value: Any, lab: bool) -> SshSpec:
    ssh = _mapping(value, "ssh")
    _only(ssh, ("user", "port", "privateKey", "privateKeyFile", "dialTimeout"), "ssh")
    user = str(ssh.get("user", "root"))
    if user != "root":
        raise _fail("ssh.user", f"{user!r}: only root is supported (sudo is not implemented)")
    port = ssh.get("port", 22)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise _fail("ssh.port", f"{port!r} is not a TCP port")
    timeout = ssh.get("dialTimeout", 120)
    if not isinstance(timeout, int) or timeout <= 0:
        raise _fail("ssh.dialTimeout", f"{timeout!r} is not a positive number of seconds")
    if "privateKey" in ssh and "privateKeyFile" in ssh:
        raise _fail("ssh", "set privateKey or privateKeyFile, not both")
    key: Optional[Secret] = None
    if "privateKeyFile" in ssh:
        path = os.path.expanduser(str(ssh["privateKeyFile"]))
        try:
            with open(path, encoding="utf-8") as f:
                key = Secret(f.read())
        except OSError as e:
            raise _fail("ssh.privateKeyFile", f"cannot read {path}: {e.strerror}") from None
    elif "privateKey" in ssh:
        key = Secret(str(ssh["privateKey"]))
    elif not lab:
        raise _fail("ssh", "privateKey or privateKeyFile is required")
    if key is not None and "PRIVATE KEY" not in key.value:
        raise _fail("ssh.privateKeyFile" if "privateKeyFile" in ssh else "ssh.privateKey", "is not a PEM/OpenSSH private key")
    return SshSpec(user=user, port=port, private_key=key, dial_timeout=timeout)


def _hosts(value: Any, cidr: ipaddress.IPv4Network, reserved: Optional[str]) -> tuple[HostSpec, ...]:
    if not isinstance(value, list) or not value:
        raise _fail("hosts", "must be a non-empty list of hosts")
    hosts: list[HostSpec] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
    for i, item in enumerate(value):
        key = f"hosts[{i}]"
        item = _mapping(item, key)
        _only(item, ("name", "address", "roles", "overrides", "hostKey"), key)
        name = str(item.get("name", ""))
        if not _HOSTNAME.match(name):
            raise _fail(f"{key}.name", f"{name!r} is not a valid host name (lower-case letters, digits, '-')")
        key = f"hosts[{i}] ({name})"
        if name in names:
            raise _fail(key, f"duplicate host name {name!r} (also hosts[{names[name]}])")
        names[name] = i
        if "address" not in item:
            raise _fail(f"{key}.address", "is required")
        address = _ipv4(item["address"], f"{key}.address")
        if ipaddress.IPv4Address(address) not in cidr:
            raise _fail(f"{key}.address", f"{address} is outside managementCidr {cidr}")
        if address == reserved:
            raise _fail(f"{key}.address", f"{address} is reserved for the lab host's bridge")
        if address in addresses:
            raise _fail(f"{key}.address", f"duplicate address {address} (also host {addresses[address]})")
        addresses[address] = name
        roles = item.get("roles")
        if not isinstance(roles, list) or not roles:
            raise _fail(f"{key}.roles", f"must be a non-empty list of roles ({', '.join(ROLES)})")
        for role in roles:
            if role not in ROLES:
                raise _fail(f"{key}.roles", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        overrides = _overrides(item.get("overrides", {}), f"{key}.overrides")
        host_key = item.get("hostKey")
        if host_key is not None and not (isinstance(host_key, str) and _HOST_KEY.match(host_key)):
            raise _fail(f"{key}.hostKey", "is not an SSH public key line (\"ssh-ed25519 AAAA...\", as ssh-keyscan prints)")
        hosts.append(HostSpec(name=name, address=address, roles=tuple(dict.fromkeys(roles)), overrides=overrides,
                              host_key=" ".join(host_key.split()[:2]) if host_key else None))
    return tuple(hosts)


def _passwords(value: Any) -> Mapping[str, Secret]:
    passwords = _mapping(value, "passwords")
    out: dict[str, Secret] = {}
    for name, secret in passwords.items():
        if name not in PASSWORDS:
            raise _fail(f"passwords.{name}", "unknown password name (see PASSWORDS in components/config.py)")
        if secret is None or str(secret) == "":
            raise _fail(f"passwords.{name}", "must not be empty (remove it to have one generated)")
        out[name] = Secret(str(secret))
    return out


def _lab(value: Any, release: str, os_release: str) -> LabSpec:
    lab = _mapping(value, "lab")
    _only(lab, ("bridge", "suite", "disposable"), "lab")
    bridge = str(lab.get("bridge", LabSpec.bridge))
    if not re.match(r"^[a-z][a-z0-9]{0,14}$", bridge):
        raise _fail("lab.bridge", f"{bridge!r} is not a valid interface name (at most 15 lower-case letters/digits)")
    suite = str(lab.get("suite", os_release))
    if suite != os_release:
        raise _fail("lab.suite", f"{suite!r} does not ship release {release} ({release} is on {os_release})")
    disposable = lab.get("disposable", True)
    if not isinstance(disposable, bool):
        raise _fail("lab.disposable", f"{disposable!r} is not true or false")
    return LabSpec(suite=suite, bridge=bridge, disposable=disposable)


def parse(raw: Mapping[str, Any]) -> CloudConfig:
    """Validates the stack's config values (keys without the project prefix) into a CloudConfig."""
    for k in raw:
        if k not in OBJECT_KEYS + SCALAR_KEYS:
            raise _fail(k, f"unknown key (known: {', '.join(SCALAR_KEYS + OBJECT_KEYS)})")

    platform = str(raw.get("platform", "debian"))
    profile = PROFILES.get(platform)
    if profile is None:
        raise _fail("platform", f"unknown platform {platform!r} (known: {', '.join(PROFILES)})")
    release = str(raw.get("release", next(iter(profile.releases))))
    if release not in profile.releases:
        raise _fail("release", f"{release!r} is not shipped by platform {platform} (available: {', '.join(profile.releases)})")
    region = str(raw.get("region", "RegionOne"))
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", region):
        raise _fail("region", f"{region!r} is not a valid region id")
    virt_type = str(raw.get("virtType", "auto"))
    if virt_type not in VIRT_TYPES:
        raise _fail("virtType", f"{virt_type!r} is not one of {', '.join(VIRT_TYPES)}")

    if "managementCidr" not in raw:
        raise _fail("managementCidr", "is required (the subnet of the hosts' management addresses)")
    try:
        cidr = ipaddress.IPv4Network(str(raw["managementCidr"]), strict=True)
    except ValueError as e:
        raise _fail("managementCidr", f"{raw['managementCidr']!r} is not a network: {e}") from None

    if "vip" in raw:
        raise _fail("vip", "not supported yet: high availability behind a VIP is not implemented (one controller only)")
    lab = _lab(raw["lab"], release, profile.releases[release]) if "lab" in raw else None
    bridge_address = str(next(cidr.hosts())) if lab else None
    ssh = _ssh(raw.get("ssh", {}), lab=lab is not None)
    if "hosts" not in raw:
        raise _fail("hosts", "is required")
    hosts = _hosts(raw["hosts"], cidr, bridge_address)
    controllers = [h.name for h in hosts if h.has("controller")]
    if not controllers:
        raise _fail("hosts", "no host has the controller role")
    if len(controllers) > 1:
        raise _fail("hosts", f"{len(controllers)} controllers ({', '.join(controllers)}): high availability is not "
                             "implemented yet; give exactly one host the controller role")
    if not any(h.has("compute") for h in hosts):
        raise _fail("hosts", "no host has the compute role")

    return CloudConfig(
        profile=profile,
        release=release,
        region=region,
        management_cidr=cidr,
        virt_type=virt_type,
        ssh=ssh,
        hosts=hosts,
        passwords=_passwords(raw.get("passwords", {})),
        overrides=_overrides(raw.get("overrides", {}), "overrides"),
        lab=lab,
    )


def _decode(key: str, value: Any) -> Any:
    if key in OBJECT_KEYS and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _fail(key, "must be a YAML mapping or list, not a string") from None
    return value


def load() -> CloudConfig:
    """Reads this project's keys from the running program's stack config and validates them."""
    from pulumi.runtime import config as runtime_config

    prefix = f"{PROJECT}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw = {
        k[len(prefix):]: _decode(k[len(prefix):], runtime_config.get_config(k))
        for k in sorted(keys)
        if k.startswith(prefix)
    }
    return parse(raw)


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
