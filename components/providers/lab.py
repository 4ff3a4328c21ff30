"""Dynamic providers for the local lab: a host bridge, a package cache, a base image, and per node a network
namespace, a copy-on-write root filesystem and a systemd-nspawn boot.

They run on the deployer (as root) with ordinary tools: ip, mount, debootstrap, apt-cacher-ng,
systemd-nspawn. Each `read` looks at the machine, so `pulumi up --refresh` notices what a restart or a
kill took away and brings it back; each `delete` leaves nothing behind.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import here
from . import ssh
from .base import Provider


class LabError(RuntimeError):
    pass


def sh(*argv: str, input: Optional[str] = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv[:4])}{' ...' if len(argv) > 4 else ''}: exit {result.returncode}: {result.stderr.strip()[-800:]}")
    return result


def wait_for_port(address: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise LabError(f"{what}: {address}:{port} not answering after {timeout:.0f}s: {e}") from None
            time.sleep(0.3)


def process_alive(pid: int, expect: str) -> bool:
    """True if `pid` is running and its command line contains `expect` (guards against pid reuse)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and expect in cmdline


def wait_gone(pid: int, expect: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid, expect):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class _Provider(Provider):
    """Common shape: `apply` makes the thing exist as `props` say (idempotent); `exists` reads the machine.
    Every property passed in is an input; a replacement is delete-first (the same name, path or address)."""

    def apply(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def exists(self, props: dict[str, Any]) -> bool:
        raise NotImplementedError

    def identity(self, props: dict[str, Any]) -> str:
        raise NotImplementedError

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=self.identity(props), outs=self.apply(props))

    def read_known(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not self.exists(props):
            return ReadResult(None, {})  # gone: refresh drops it from state, the next up makes it again
        return ReadResult(id_=id_, outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self.apply(news))


# ---------------------------------------------------------------------------------------------- host side


class HostPackagesProvider(_Provider):
    """Debian packages the lab needs on the deployer. They stay installed on destroy (documented)."""

    def identity(self, props):
        return "lab-host-packages"

    def apply(self, props):
        try:
            here.install(props["packages"])
        except here.InstallError as e:
            raise LabError(str(e)) from None
        return props

    def exists(self, props):
        return not here.missing(props["packages"])

    def delete(self, _id, _props):
        pass


class BridgeProvider(_Provider):
    replace_on = ("name",)

    def identity(self, props):
        return props["name"]

    def apply(self, props):
        name, cidr = props["name"], props["address_cidr"]
        if sh("ip", "link", "show", name, check=False).returncode != 0:
            sh("ip", "link", "add", name, "type", "bridge")
        addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", name).stdout)
        have = {f"{a['local']}/{a['prefixlen']}" for i in addrs for a in i.get("addr_info", []) if a["family"] == "inet"}
        for stale in have - {cidr}:
            sh("ip", "addr", "del", stale, "dev", name)
        if cidr not in have:
            sh("ip", "addr", "add", cidr, "dev", name)
        sh("ip", "link", "set", name, "up")
        return props

    def exists(self, props):
        out = sh("ip", "-j", "addr", "show", "dev", props["name"], check=False)
        return out.returncode == 0 and props["address_cidr"].split("/")[0] in out.stdout

    def delete(self, _id, props):
        if sh("ip", "link", "show", props["name"], check=False).returncode == 0:
            sh("ip", "link", "del", props["name"])


def machine_name(stack: str, host: str) -> str:
    """The systemd-nspawn machine (and network namespace) of a lab node."""
    return f"osd-{stack}-{host}"


def host_apt_sources() -> dict[str, str]:
    """This machine's own apt sources: {path: text}."""
    texts = {}
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                texts[path] = f.read()
    return texts


# Debian's release codenames: a suite named by one (with -updates, -security...) is a Debian archive's.
DEBIAN_CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke")


def debian_sources(texts: Mapping[str, str], suite: str) -> list[dict[str, Any]]:
    """The Debian archives in the host's apt sources (one-line and deb822 formats), for `suite` whatever suite the
    host itself runs: each archive's suites with the host's codename replaced (bookworm-security: trixie-security),
    as a Debian mirror serves every release: [{"uri": ..., "suites": [...], "components": [...]}]. Third-party
    repositories are left out."""
    found: list[dict[str, Any]] = []

    def add(uri: str, suites: list[str], components: list[str]) -> None:
        mapped = [suite + s[len(s.split("-")[0]):] for s in suites if s.split("-")[0] in DEBIAN_CODENAMES]
        suites = list(dict.fromkeys(mapped))
        if suites and "main" in components and uri.startswith(("http://", "https://")):
            for same in (f for f in found if f["uri"] == uri.rstrip("/")):  # (both bookworm and trixie listed)
                same["suites"] = list(dict.fromkeys(same["suites"] + suites))
                return
            found.append({"uri": uri.rstrip("/"), "suites": suites, "components": ["main"]})

    for name, text in sorted(texts.items()):
        if name.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                    for uri in fields.get("uris", "").split():
                        add(uri, fields.get("suites", "").split(), fields.get("components", "").split())
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # drop [arch=... signed-by=...]
                if len(words) >= 4 and words[0] == "deb":
                    add(words[1], [words[2]], words[3:])
    return found


def cache_url(cache_address: str, port: int, uri: str) -> str:
    """An archive URI as the nodes reach it: through apt-cacher-ng's `http://CACHE/HOST/PATH` form."""
    return f"http://{cache_address}:{port}/{uri.split('://', 1)[1]}"


class PackageCacheProvider(_Provider):
    """apt-cacher-ng on the bridge address, with its own config dir so the host's package config is untouched.
    The cached packages (`cache_dir`) stay on destroy: every rebuild is faster than the first build."""

    replace_on = ("address", "port", "state_dir")

    def identity(self, props):
        return f"{props['address']}:{int(props['port'])}"

    def _pid(self, props) -> Optional[int]:
        try:
            with open(os.path.join(props["state_dir"], "apt-cacher-ng.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid, "apt-cacher-ng") else None

    def apply(self, props):
        state, conf = props["state_dir"], os.path.join(props["state_dir"], "conf")
        if self._pid(props):
            self.delete("", props)  # restart with the new settings
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree("/etc/apt-cacher-ng", conf)
        # Upstream for the Debian remap group: the mirrors the host's own apt sources use.
        with open(os.path.join(conf, "backends_debian"), "w") as f:
            f.write("".join(f"{m}/\n" for m in props["mirrors"]))
        os.makedirs(props["cache_dir"], exist_ok=True)
        os.makedirs(os.path.join(state, "log"), exist_ok=True)
        sh(
            "/usr/sbin/apt-cacher-ng", "-c", conf,
            "ForeGround=0", f"CacheDir={props['cache_dir']}", f"LogDir={state}/log",
            f"PidFile={state}/apt-cacher-ng.pid", f"BindAddress={props['address']}", f"Port={int(props['port'])}",
            "SocketPath=", "ExThreshold=30",
        )
        wait_for_port(props["address"], int(props["port"]), 20, "package cache")
        return props

    def exists(self, props):
        return self._pid(props) is not None

    def delete(self, _id, props):
        pid = self._pid(props)
        if pid:
            os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, "apt-cacher-ng", 10):
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, "apt-cacher-ng", 5)
        shutil.rmtree(props["state_dir"], ignore_errors=True)  # config, pid and log; the cached packages stay


class BaseImageProvider(_Provider):
    """A debootstrap'ed root filesystem under a key of its inputs; rebuilt only when they change. It stays on
    destroy (so does the cache): `scripts/lab purge` removes both."""

    replace_on = ("suite", "mirror", "include", "images_dir")

    @staticmethod
    def key(props) -> str:
        inputs = json.dumps([props["suite"], props["mirror_upstream"], props["include"]], sort_keys=True)
        return f"{props['suite']}-{hashlib.sha256(inputs.encode()).hexdigest()[:12]}"

    def identity(self, props):
        return self.key(props)

    def _dir(self, props) -> str:
        return os.path.join(props["images_dir"], self.key(props))

    def apply(self, props):
        final = self._dir(props)
        if not os.path.exists(os.path.join(final, ".complete")):
            tmp = final + ".building"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            sh(
                "debootstrap", "--variant=minbase", f"--include={','.join(props['include'])}",
                props["suite"], f"{tmp}/rootfs", props["mirror"], timeout=1800,
            )
            rootfs = f"{tmp}/rootfs"
            # Per-node identity is made at node creation: no shared machine-id or SSH host keys.
            open(f"{rootfs}/etc/machine-id", "w").close()
            for name in os.listdir(f"{rootfs}/etc/ssh"):
                if name.startswith("ssh_host_"):
                    os.remove(f"{rootfs}/etc/ssh/{name}")
            shutil.rmtree(f"{rootfs}/var/cache/apt/archives", ignore_errors=True)
            os.makedirs(f"{rootfs}/var/cache/apt/archives/partial", exist_ok=True)
            with open(f"{tmp}/.complete", "w") as f:
                f.write(self.key(props) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        return dict(props, rootfs=os.path.join(final, "rootfs"))

    def exists(self, props):
        return os.path.exists(os.path.join(self._dir(props), ".complete"))

    def delete(self, _id, _props):
        pass


# ---------------------------------------------------------------------------------------------- per node


class NodeNetworkProvider(_Provider):
    """A network namespace with eth0 on the lab bridge (a veth pair) and a default route via the bridge."""

    replace_on = ("netns", "veth", "bridge")

    def identity(self, props):
        return props["netns"]

    def apply(self, props):
        ns, veth = props["netns"], props["veth"]
        if not os.path.exists(f"/run/netns/{ns}"):
            sh("ip", "netns", "add", ns)
        inside = ["ip", "-n", ns]
        if sh(*inside, "link", "show", "eth0", check=False).returncode != 0:
            sh("ip", "link", "del", veth, check=False)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", props["bridge"], "up")
        sh(*inside, "addr", "flush", "dev", "eth0")
        sh(*inside, "addr", "add", props["address_cidr"], "dev", "eth0")
        sh(*inside, "link", "set", "eth0", "up")
        sh(*inside, "link", "set", "lo", "up")
        sh(*inside, "route", "replace", "default", "via", props["gateway"])
        if props.get("provider_veth"):
            provider, inner = props["provider_veth"], props["provider_interface"]
            if sh(*inside, "link", "show", inner, check=False).returncode != 0:
                sh("ip", "link", "del", provider, check=False)
                sh("ip", "link", "add", provider, "type", "veth", "peer", "name", inner, "netns", ns)
            sh("ip", "link", "set", provider, "master", props["provider_bridge"], "up")
            sh(*inside, "link", "set", inner, "up")
        return props

    def exists(self, props):
        if not os.path.exists(f"/run/netns/{props['netns']}"):
            return False
        out = sh("ip", "-n", props["netns"], "-j", "addr", "show", "dev", "eth0", check=False)
        links = [props["veth"], *([props["provider_veth"]] if props.get("provider_veth") else [])]
        return (out.returncode == 0 and props["address_cidr"].split("/")[0] in out.stdout
                and all(sh("ip", "link", "show", link, check=False).returncode == 0 for link in links))

    def delete(self, _id, props):
        if os.path.exists(f"/run/netns/{props['netns']}"):
            sh("ip", "netns", "del", props["netns"])
        sh("ip", "link", "del", props["veth"], check=False)
        if props.get("provider_veth"):
            sh("ip", "link", "del", props["provider_veth"], check=False)


def _is_mountpoint(path: str) -> bool:
    return sh("mountpoint", "-q", path, check=False).returncode == 0


class NodeRootfsProvider(_Provider):
    """The node's root: an overlay of the base image (read-only, shared) and the node's own upper dir, plus
    its identity: host name, machine-id, SSH host keys, the authorized key, and apt sources via the cache."""

    replace_on = ("node_dir", "base_rootfs")
    outputs = ("host_key",)

    def identity(self, props):
        return props["node_dir"]

    def apply(self, props):
        d = props["node_dir"]
        root = f"{d}/root"
        for sub in ("upper", "work", "root"):
            os.makedirs(f"{d}/{sub}", exist_ok=True)
        if not _is_mountpoint(root):
            sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={props['base_rootfs']},upperdir={d}/upper,workdir={d}/work", root)
        files = {
            "etc/hostname": props["hostname"] + "\n",
            "etc/apt/sources.list": props["apt_sources"],
            "root/.ssh/authorized_keys": props["authorized_key"].strip() + "\n",
        }
        for rel, content in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(content)
        hosts = f"{root}/etc/hosts"
        if not os.path.exists(hosts) or "localhost" not in open(hosts).read():
            # What the Debian installer writes, the 127.0.1.1 line included: the deploy must cope with it.
            with open(hosts, "w") as f:
                f.write(f"127.0.0.1\tlocalhost\n127.0.1.1\t{props['hostname']}\n\n"
                        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
        # This machine's kernel has no loadable modules, and a node could not load one anyway: Debian 13's systemd runs
        # systemd-modules-load in the node (it keeps CAP_SYS_MODULE), which fails and leaves the node "degraded".
        masked = f"{root}/etc/systemd/system/systemd-modules-load.service"
        if not os.path.lexists(masked):
            os.makedirs(os.path.dirname(masked), exist_ok=True)
            os.symlink("/dev/null", masked)
        os.chmod(f"{root}/root/.ssh", 0o700)
        os.chmod(f"{root}/root/.ssh/authorized_keys", 0o600)
        with open(f"{root}/etc/machine-id") as f:
            if not f.read().strip():
                with open(f"{root}/etc/machine-id", "w") as w:
                    w.write(uuid.uuid4().hex + "\n")
        if not any(n.startswith("ssh_host_") for n in os.listdir(f"{root}/etc/ssh")):
            sh("ssh-keygen", "-A", "-f", root)
        with open(f"{root}/etc/ssh/ssh_host_ed25519_key.pub") as f:
            host_key = " ".join(f.read().split()[:2])  # the node's key, pinned by every connection to it
        return dict(props, host_key=host_key)

    def exists(self, props):
        return _is_mountpoint(f"{props['node_dir']}/root")

    def delete(self, _id, props):
        d = props["node_dir"]
        if _is_mountpoint(f"{d}/root"):
            sh("umount", f"{d}/root")
        shutil.rmtree(d, ignore_errors=True)
        try:
            os.removedirs(os.path.dirname(d))  # the stack's now empty folders, up to the first non-empty one
        except OSError:
            pass


def netns_processes(netns: str) -> list[int]:
    """Every process inside the network namespace /run/netns/NETNS: a lab node's processes, whoever started them."""
    try:
        target = os.stat(f"/run/netns/{netns}")
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                pids.append(int(entry))
    return pids


def node_init(netns: str) -> Optional[int]:
    """The node's PID 1 (systemd, as the host sees it), or None if the node is not running."""
    for pid in netns_processes(netns):
        try:
            with open(f"/proc/{pid}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
    return None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class NodeProvider(_Provider):
    """The boot: systemd-nspawn with systemd as PID 1 in the node's namespace, detached from this process.

    `--register=no --keep-unit` because the deployer may have no system bus (PID 1 not systemd); the node's
    network comes from its namespace, not from nspawn. Ready when SSH answers and systemd has finished
    booting. The node is alive while its init runs in its namespace (so a killed nspawn whose node lives
    on is still that node). Stopping asks for an orderly poweroff and, past `stop_timeout`, kills the
    node's init, which ends every process of the node.
    """

    replace_on = ("machine", "root", "netns")
    # Read at boot only: a change reboots the node in place (the same machine and disk, as a real host's reboot).
    # `writable_api_vfs`: what of /proc/sys the node may write (nspawn's SYSTEMD_NSPAWN_API_VFS_WRITABLE).
    boot_settings = ("writable_api_vfs",)

    def identity(self, props):
        return props["machine"]

    def apply(self, props):
        self.stop(props)  # a node left running outside the state (an earlier crash) is not reused
        env = dict(os.environ)
        if props.get("writable_api_vfs"):
            env["SYSTEMD_NSPAWN_API_VFS_WRITABLE"] = props["writable_api_vfs"]
        log = open(f"{props['log']}", "ab")
        proc = subprocess.Popen(
            [
                "systemd-nspawn", "--register=no", "--keep-unit", "--boot", f"--directory={props['root']}",
                f"--network-namespace-path=/run/netns/{props['netns']}", f"--machine={props['machine']}",
                "--capability=all", "--console=read-only",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
        log.close()
        try:
            state = ssh.execute(
                props["connection"], "timeout 120 systemctl is-system-running --wait || true", timeout=150, dial_timeout=120
            ).stdout.strip()
        except ssh.SshError as e:
            raise LabError(f"node {props['hostname']} did not answer SSH after boot ({e}); see {props['log']}") from None
        if state not in ("running", "degraded"):
            raise LabError(f"node {props['hostname']}: systemd is {state or 'unknown'} after boot; see {props['log']}")
        return dict(props, pid=proc.pid)

    def update(self, _id, olds, news):
        if any(olds.get(k) != news.get(k) for k in self.boot_settings):
            return UpdateResult(outs=self.apply(dict(news, pid=olds.get("pid"))))
        # Settings that need no reboot: keep the running boot.
        return UpdateResult(outs=dict(news, pid=olds["pid"]))

    def exists(self, props):
        return node_init(props["netns"]) is not None

    def stop(self, props) -> None:
        netns, nspawn = props["netns"], int(props.get("pid") or 0)
        init = node_init(netns)
        if init is not None:
            _kill(init, signal.SIGRTMIN + 4)  # systemd: orderly poweroff
            if not wait_gone(init, "", float(props.get("stop_timeout", 30))):
                _kill(init, signal.SIGKILL)  # ends the node's whole PID namespace
                wait_gone(init, "", 15)
        for pid in netns_processes(netns):  # nothing of the node may outlive it
            _kill(pid, signal.SIGKILL)
        if nspawn and not wait_gone(nspawn, props["machine"], 10):
            _kill(nspawn, signal.SIGKILL)

    def delete(self, _id, props):
        self.stop(props)


# ---------------------------------------------------------------------------------------------- resources

class HostPackages(Resource, module="lab", name="HostPackages"):
    def __init__(self, name: str, packages: list[str], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(HostPackagesProvider(), name, {"packages": packages}, opts)


class Bridge(Resource, module="lab", name="Bridge"):
    def __init__(self, name: str, bridge: str, address_cidr: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(BridgeProvider(), name, {"name": bridge, "address_cidr": address_cidr}, opts)


class PackageCache(Resource, module="lab", name="PackageCache"):
    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(PackageCacheProvider(), name, props, opts)


class BaseImage(Resource, module="lab", name="BaseImage"):
    rootfs: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(BaseImageProvider(), name, dict(props, rootfs=None), opts)


class NodeNetwork(Resource, module="lab", name="NodeNetwork"):
    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(NodeNetworkProvider(), name, props, opts)


class NodeRootfs(Resource, module="lab", name="NodeRootfs"):
    host_key: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(NodeRootfsProvider(), name, dict(props, host_key=None), opts)


class Node(Resource, module="lab", name="Node"):
    """A booted node. `connection` (secret) is an output, so steps on the node wait for its boot by data."""

    connection: pulumi.Output[dict]
    pid: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection"]))
        super().__init__(NodeProvider(), name, dict(props, pid=None), opts)
