"""One managed host: its name, management address, roles and the SSH connection every remote step uses.

Before anything is installed, the host gets the cloud's names in /etc/hosts (a managed block) and a check
that it resolves every name to its management address: the classic failure of a name mapped to the wrong
NIC (Keystone answering HTTP 500) stops here, naming the host, the name and the address.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi

from .blocks.steps import package_set
from .config import HostSpec, SshSpec
from .profiles import Profile
from .providers.remote import RemoteCommand

BEGIN, END = "# BEGIN openstack-deploy", "# END openstack-deploy"


def ssh_connection(spec: HostSpec, ssh: SshSpec, private_key: pulumi.Input[str]) -> pulumi.Output[dict]:
    """The connection to a configured host, as the dynamic providers take it (components/providers/ssh.py).
    Secret as a whole, because it holds the private key."""
    return pulumi.Output.secret(
        pulumi.Output.from_input(private_key).apply(
            lambda key: {
                "host": spec.address,
                "port": ssh.port,
                "user": ssh.user,
                "private_key": key,
                "dial_timeout": ssh.dial_timeout,
            }
        )
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


class Host(pulumi.ComponentResource):
    """A prepared host. Its `connection` resolves only once every host's names check out and this host's
    packages are in (`install`), so every step that uses it (parented to it, named `{name}-{step}`) runs on
    a host that resolves the cloud's names correctly and has what it needs."""

    connection: pulumi.Output[dict]
    names_checked: pulumi.Output[str]  # resolves once this host resolves every name correctly

    def __init__(self, name: str, args: HostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Host", name, None, opts)
        self._name = name
        self._given = args.connection
        self.spec = args.spec
        self.address = args.spec.address
        child = pulumi.ResourceOptions(parent=self)
        block = hosts_block(args.names)
        etc_hosts = RemoteCommand(
            f"{name}-etc-hosts",
            connection=args.connection,
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
            connection=args.connection,
            create=check,
            update=check,
            check=check,
            triggers=[block],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[etc_hosts]),
        )
        self.names_checked = name_check.id
        self.connection = pulumi.Output.secret(pulumi.Output.all(args.connection, name_check.id).apply(lambda v: v[0]))
        self.register_outputs({"address": self.address, "roles": list(args.spec.roles)})

    def install(self, profile: Profile, packages: Sequence[str], after: Sequence[pulumi.Output[str]]) -> None:
        """Installs the distribution packages of every service the host runs, in one go, once every host in
        `after` (all of the cloud's) resolves the names: a wrong mapping anywhere stops all installs."""
        if not packages:
            return
        checked = pulumi.Output.all(self._given, *after).apply(lambda v: v[0])
        step = package_set(f"{self._name}-packages", checked, profile, packages, opts=pulumi.ResourceOptions(parent=self))
        self.connection = pulumi.Output.secret(pulumi.Output.all(self.connection, step.id).apply(lambda v: v[0]))
