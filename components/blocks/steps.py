"""Host steps as small functions over the remote providers: a package set, a config file, a systemd service,
a masked unit.

Each is idempotent, has its undo, and tells on refresh whether its effect is still there.
"""

from __future__ import annotations

import shlex
from typing import Optional, Sequence, TypeVar

import pulumi

from ..profiles import Profile
from ..providers.remote import PackageSet, RemoteCommand, RemoteFile

T = TypeVar("T")


def once_done(value: pulumi.Input[T], *steps: pulumi.CustomResource) -> pulumi.Output[T]:
    """`value`, resolved only once every one of `steps` is done: order by data. It is known in a preview even
    where a step is to run (again), because it waits on the step's own `connection` input echoed back, not on
    an output the step decides (its id is unknown until it has run)."""
    return pulumi.Output.all(value, *(pulumi.Output.unsecret(s.connection) for s in steps)).apply(lambda v: v[0])


def restarted_on(*files: RemoteFile) -> list[pulumi.Output[int]]:
    """A service's triggers: the write counts of the files it reads. It restarts exactly when one was (re)written
    (by a change of the program or to repair a hand edit); nothing about the content is kept."""
    return [f.version for f in files]


def package_set(name: str, connection: pulumi.Input[dict], profile: Profile, packages: Sequence[str],
                opts: Optional[pulumi.ResourceOptions] = None) -> PackageSet:
    """Installs `packages` (distribution names) without starting their services: each service starts once
    its config is in place. A changed set installs the new packages and removes the dropped ones, in place."""
    return PackageSet(name, connection, list(packages),
                      install=f"{profile.install_command} {{packages}} && {profile.after_install}",
                      remove=profile.remove_command + " {packages}", query=profile.installed_query, opts=opts)


def config_file(name: str, connection: pulumi.Input[dict], path: str, content: pulumi.Input[str],
                mode: str = "0644", owner: str = "root", group: str = "root",
                opts: Optional[pulumi.ResourceOptions] = None, shown: Optional[pulumi.Input[str]] = None) -> RemoteFile:
    """`shown`: for a file holding secrets, its content with them masked (Passwords.masked)."""
    return RemoteFile(name, connection=connection, path=path, content=content, mode=mode, owner=owner, group=group,
                      shown=shown, opts=opts)


def systemd_service(name: str, connection: pulumi.Input[dict], unit: str, triggers: Sequence[pulumi.Input[int]] = (),
                    ready: str = "", reload: bool = False,
                    opts: Optional[pulumi.ResourceOptions] = None) -> RemoteCommand:
    """Enables and (re)starts `unit`; runs again, restarting it, exactly when one of `triggers` (restarted_on:
    the files it reads) changes. `ready` is a shell condition waited for with a deadline after each start.
    `reload`: for a unit another step owns (a web server with several sites), reload it and never stop it."""
    u = shlex.quote(unit)
    # A daemon whose first start fails on a dependency that is briefly away (Keystone answering 500 while Apache
    # reloads) is started again by its unit's restart policy: that counts, within a deadline.
    settled = wait_until(f"systemctl is-active -q {u}", 90, f"{unit} (started again by systemd)")
    start = f"systemctl enable -q {u} && {{ systemctl {'reload-or-restart' if reload else 'restart'} {u} || {{ {settled}; }}; }}"
    if ready:
        start += f" && {ready}"
    return RemoteCommand(
        name,
        connection=connection,
        create=start,
        update=start,
        delete=None if reload else f"systemctl disable -q --now {u} || true",
        check=f"systemctl is-active -q {u} && systemctl is-enabled -q {u}",
        triggers=list(triggers),
        opts=opts,
    )


def masked_service(name: str, connection: pulumi.Input[dict], unit: str,
                   opts: Optional[pulumi.ResourceOptions] = None) -> RemoteCommand:
    """A unit the packages enable that this cloud must not run (a packaged uwsgi API served by Apache instead,
    libvirt-guests): stopped, disabled and masked; refresh sees it unmasked."""
    u = shlex.quote(unit)
    return RemoteCommand(
        name,
        connection=connection,
        create=f"systemctl disable -q --now {u} 2>/dev/null || true; systemctl mask -q {u}",
        delete=f"systemctl unmask -q {u}",
        check=f"test \"$(systemctl is-enabled {u} 2>/dev/null)\" = masked",
        opts=opts,
    )


def platform_service(name: str, connection: pulumi.Input[dict], profile: Profile, service: str,
                     triggers: Sequence[pulumi.Input[int]] = (), ready: str = "",
                     opts: Optional[pulumi.ResourceOptions] = None) -> RemoteCommand:
    """systemd_service for a logical service (profiles.py): with the platform's unit defaults file, if it has
    one for this service, written first (`{name}-defaults`) and among the triggers."""
    extra = profile.unit_defaults.get(service)
    if extra is not None:
        path, text = extra
        parent = opts.parent if opts is not None else None
        defaults = config_file(f"{name}-defaults", connection, path, text, opts=pulumi.ResourceOptions(parent=parent))
        triggers = [*triggers, *restarted_on(defaults)]
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[defaults]))
    return systemd_service(name, connection, profile.service(service), triggers=triggers, ready=ready, opts=opts)


def as_user(user: str, command: str) -> str:
    """`command` run as a service's user (db syncs, key setup), so the files it creates stay readable by the
    service's daemons."""
    return f"runuser -u {shlex.quote(user)} -- {command}"


def http_answers(address: str, port: int, what: str, seconds: int = 120) -> str:
    """Shell that waits until something answers HTTP on `address:port` (any status), failing with `what`."""
    return wait_until(f"curl -s -m 5 -o /dev/null http://{address}:{port}/", seconds, f"{what} (port {port})")


def wait_until(condition: str, seconds: int, what: str) -> str:
    """Shell that polls `condition` once a second until it holds, failing after `seconds` with `what`."""
    return (
        f"deadline=$(( $(date +%s) + {seconds} )); until {condition}; do "
        f"if [ $(date +%s) -ge $deadline ]; then echo {shlex.quote(what + f' not ready after {seconds}s')} >&2; exit 1; fi; "
        "sleep 1; done"
    )


def configured_service(prefix: str, connection: pulumi.Input[dict], path: str, content: str, unit: str,
                       parent: pulumi.Resource, ready: str = "") -> tuple[RemoteFile, RemoteCommand]:
    """The commonest pair: `{prefix}-config` written to `path`, then `{prefix}-service` (re)started on its writes."""
    conf = config_file(f"{prefix}-config", connection, path, content, opts=pulumi.ResourceOptions(parent=parent))
    service = systemd_service(f"{prefix}-service", connection, unit, triggers=restarted_on(conf), ready=ready,
                              opts=pulumi.ResourceOptions(parent=parent, depends_on=[conf]))
    return conf, service
