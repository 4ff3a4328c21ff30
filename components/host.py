"""One managed host: its name, management address, roles and the SSH connection every remote step uses.

Before anything is installed, the host gets the cloud's names in /etc/hosts (a managed block) and a check
that it resolves every name to its management address: the classic failure of a name mapped to the wrong
NIC (Keystone answering HTTP 500) stops here, naming the host, the name and the address.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi

from .blocks.steps import once_done, package_set
from .config import HostSpec, SshSpec
from .profiles import Profile
from .providers.remote import HostAccess, RemoteCommand

BEGIN, END = "# BEGIN openstack-deploy", "# END openstack-deploy"


def ssh_connection(spec: HostSpec, ssh: SshSpec, private_key: pulumi.Input[str]) -> pulumi.Output[dict]:
    """The connection to a configured host, as the dynamic providers take it (components/providers/ssh.py).
    Secret as a whole, because it holds the private key. Its key is pinned if the stack config gives one
    (`hostKey`); otherwise the one met first is (HostAccess)."""
    return pulumi.Output.secret(
        pulumi.Output.from_input(private_key).apply(
            lambda key: {
                "host": spec.address,
                "port": ssh.port,
                "user": ssh.user,
                "private_key": key,
                "dial_timeout": ssh.dial_timeout,
                **({"host_key": spec.host_key} if spec.host_key else {}),
            }
        )
    )


def os_release_check(codename: str) -> str:
    """Fails, naming what the host runs, unless it runs the OS release the stack's OpenStack release is for."""
    return (
        ". /etc/os-release; if [ \"${VERSION_CODENAME:-}\" != " + shlex.quote(codename) + " ]; then "
        "echo \"host $(hostname) runs ${PRETTY_NAME:-an unknown system}, not " + codename
        + " (the stack's release is for " + codename + ")\" >&2; exit 1; fi"
    )


def hosts_block(names: Mapping[str, str]) -> str:
    return "\n".join([BEGIN, *(f"{address} {name}" for name, address in names.items()), END]) + "\n"


_LOOPBACK_MARK = "# disabled by openstack-deploy: "


def write_block_script(names: Mapping[str, str]) -> str:
    """Replaces the managed block of /etc/hosts with stdin, keeping every other line, and comments out the
    line some distributions add mapping the host's own name to 127.0.1.1 (the install guide says to)."""
    names_re = "|".join(names)
    return (
        "block=$(cat); touch /etc/hosts; "
        f"awk -v b={shlex.quote(BEGIN)} -v e={shlex.quote(END)} -v m={shlex.quote(_LOOPBACK_MARK)} "
        f"-v n={shlex.quote(f'^({names_re})$')} "
        "'$0==b{skip=1;next} $0==e{skip=0;next} skip{next} "
        "$1 ~ /^127\\./ && $1 != \"127.0.0.1\" { for (i = 2; i <= NF; i++) if ($i ~ n) { print m $0; next } } "
        "{print}' /etc/hosts > /etc/hosts.osd-new; "
        'printf "%s\\n" "$block" >> /etc/hosts.osd-new; cat /etc/hosts.osd-new > /etc/hosts; rm -f /etc/hosts.osd-new'
    )


def remove_block_script() -> str:
    return (
        f"awk -v b={shlex.quote(BEGIN)} -v e={shlex.quote(END)} -v m={shlex.quote(_LOOPBACK_MARK)} "
        "'$0==b{skip=1;next} $0==e{skip=0;next} skip{next} index($0, m)==1 {print substr($0, length(m)+1); next} {print}' "
        "/etc/hosts > /etc/hosts.osd-new && cat /etc/hosts.osd-new > /etc/hosts && rm -f /etc/hosts.osd-new"
    )


def block_check_script(block: str) -> str:
    digest = hashlib.sha256(block.encode()).hexdigest()
    return (
        f"test \"$(awk -v b={shlex.quote(BEGIN)} -v e={shlex.quote(END)} "
        "'$0==b{on=1} on{print} $0==e{on=0}' /etc/hosts | sha256sum | cut -d' ' -f1)\" = " + digest
    )


def name_check_script(names: Mapping[str, str]) -> str:
    """Fails, naming each wrong mapping, unless this host resolves every name to its management address."""
    pairs = " ".join(shlex.quote(f"{name}={address}") for name, address in names.items())
    return (
        f"fail=0; for pair in {pairs}; do n=${{pair%%=*}}; want=${{pair#*=}}; "
        "got=$(getent ahostsv4 \"$n\" | awk '{print $1}' | sort -u | tr '\\n' ' ' | sed 's/ $//'); "
        'if [ "$got" != "$want" ]; then '
        'echo "host $(hostname) maps $n to ${got:-nothing} (expected $want, its management address): fix /etc/hosts or DNS" >&2; '
        "fail=1; fi; done; exit $fail"
    )


@dataclass(frozen=True)
class HostArgs:
    spec: HostSpec
    # From the stack config (ssh_connection) or from a lab node, whose boot it then waits for.
    connection: pulumi.Input[dict]
    # Every host's name and management address, for /etc/hosts and the resolution check.
    names: Mapping[str, str]
    os_release: str  # the OS codename the stack's release is for (CloudConfig.os_release)
    # The stack's deadlines of remote steps by kind (CloudConfig.deadlines), carried in the connection.
    deadlines: Mapping[str, int] = field(default_factory=dict)
    after: Sequence[pulumi.Resource] = ()  # what must be done before anything is sent to the host


class Host(pulumi.ComponentResource):
    """A prepared host. Its `connection` pins the host's SSH key (`{name}-ssh`) and resolves only once the host
    runs the right OS release, every host's names check out and this host's packages are in (`install`), so
    every step that uses it (parented to it, named `{name}-{step}`) runs on a host that is the one it was,
    resolves the cloud's names correctly and has what it needs."""

    connection: pulumi.Output[dict]
    name_check: RemoteCommand  # done once this host resolves every name correctly

    def __init__(self, name: str, args: HostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Host", name, None, opts)
        self._name = name
        self.spec = args.spec
        self.address = args.spec.address
        child = pulumi.ResourceOptions(parent=self)
        named = pulumi.Output.secret(pulumi.Output.from_input(args.connection).apply(
            lambda c: dict(c, name=args.spec.name, **({"deadlines": dict(args.deadlines)} if args.deadlines else {}))
        ))  # errors name the host; steps stop at their deadlines
        access = HostAccess(f"{name}-ssh", named,
                            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        # Every later step pins the key HostAccess verified: the connection's own (known in every preview), or
        # the one it met first and recorded.
        pinned = once_done(named.apply(
            lambda c: c if c.get("host_key") else access.host_key.apply(lambda key: dict(c, host_key=key))), access)
        runs = os_release_check(args.os_release)
        release = RemoteCommand(f"{name}-os-release", connection=pinned, create=runs, update=runs, check=runs,
                                opts=child)
        block = hosts_block(args.names)
        etc_hosts = RemoteCommand(
            f"{name}-etc-hosts",
            connection=once_done(pinned, release),
            create=write_block_script(args.names),
            update=write_block_script(args.names),
            delete=remove_block_script(),
            check=block_check_script(block),
            stdin=block,
            opts=child,
        )
        check = name_check_script(args.names)
        name_check = RemoteCommand(
            f"{name}-name-check",
            connection=once_done(pinned, etc_hosts),
            create=check,
            update=check,
            check=check,
            triggers=[block],
            opts=child,
        )
        self.name_check = name_check
        self._pinned = pinned
        self.connection = once_done(pinned, name_check)
        self.register_outputs({"address": self.address, "roles": list(args.spec.roles)})

    def install(self, profile: Profile, packages: Sequence[str], after: Sequence[RemoteCommand]) -> None:
        """Installs the distribution packages of every service the host runs, in one go, once every host's name
        check in `after` (all of the cloud's) has passed: a wrong mapping anywhere stops all installs. (Order only:
        nothing of another host flows here, so a host being added leaves this one's preview as it is.)"""
        if not packages:
            return
        step = package_set(f"{self._name}-packages", once_done(self._pinned, self.name_check), profile, packages,
                           opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)))
        self.connection = once_done(self.connection, step)
