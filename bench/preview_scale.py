"""Preview cost against cloud size (run by bench/preview-scale).

For each N, a stack made from stacks/Pulumi.example.yaml (real hosts: no `lab` key) with its controller and N
compute hosts, each a copy of the example's compute host at an address of TEST-NET-1 (192.0.2.0/24, which no
host answers), is previewed with `pulumi preview` on a throwaway file backend (a temporary directory, removed
afterwards, with a passphrase made for the run). It prints one row per N: resources, wall seconds, CPU seconds
of all its processes (less at the mercy of whatever else the machine runs), the peak RSS of the Python program
and of the dynamic providers' process, milliseconds per resource, and the ratio of each to the smallest N's;
then whether time and memory grow linearly: the cost of one more host between the last three sizes (10 -> 50
against 50 -> 100) stays within a factor of 1.5.

A preview without --refresh must not dial any host. Every Python process of the run (the program and the
dynamic providers, the only code that dials hosts: components/providers/ssh.py) carries an audit hook that
records each `socket.connect` to an address that is not loopback; one recorded fails the bench, naming it.
The bench checks that the hook was on in both processes and that it sees a probe of its own.

`--json FILE` writes the rows (one object per N) for a table that gathers every bench's figures.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Optional

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = ("Pulumi.yaml", "__main__.py", "components", "templates")
TEST_NET = ipaddress.ip_network("192.0.2.0/24")  # TEST-NET-1 (RFC 5737): documentation only, never routed
PAGE = os.sysconf("SC_PAGE_SIZE")
PROVIDERS = "components.providers.server"  # the dynamic providers' process runs this module (toolchain/README.md)

# Loaded by every Python process of the run (PYTHONPATH): records each connect() to an address outside this
# machine, wherever in the program or the providers it comes from, at the moment it is attempted (so an attempt
# that would time out or fail is caught as surely as one that succeeds).
SITECUSTOMIZE = '''
import os, sys
with open("/proc/self/cmdline", "rb") as _f:
    _argv = _f.read().replace(b"\\0", b" ").decode(errors="replace").strip()
with open(os.environ["OSD_BENCH_HOOKED_LOG"], "a") as _log:  # proof that the watch is on in this process
    _log.write(f"{os.getpid()} {_argv}\\n")

def _osd_watch_connect(event, args):
    if event != "socket.connect":
        return
    address = args[1]
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith(("127.", "::ffff:127.", "/", "\\0")) or host == "::1"):
        with open(os.environ["OSD_BENCH_CONNECT_LOG"], "a") as log:
            log.write(f"{os.getpid()} {_argv}: connect to {address!r}\\n")

sys.addaudithook(_osd_watch_connect)
'''


def watch_self_test(env: dict, connect_log: str) -> None:
    """The watch records a connect() outside this machine: a UDP socket's, which sends nothing."""
    probe = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('192.0.2.1', 9))"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True)
    with open(connect_log) as f:
        assert "192.0.2.1" in f.read(), "the connection watch did not see its own probe"
    os.remove(connect_log)
    os.remove(env["OSD_BENCH_HOOKED_LOG"])


@dataclass
class Row:
    hosts: int  # compute hosts (besides the controller)
    resources: int
    seconds: float
    cpu_seconds: float  # user + system of every process of the preview (CLI, engine, program, plugins)
    program_mib: float  # peak RSS of the Python program (__main__.py under the language host)
    providers_mib: float  # peak RSS of the dynamic-provider process (checks every dynamic resource)


def stack_config(example: dict, computes: int, key_file: str) -> dict:
    """The example stack with its controller and `computes` copies of its compute host."""
    doc = copy.deepcopy(example)
    cfg = doc["config"]
    assert "openstack-deploy:lab" not in cfg, "the example stack must be one for real hosts"
    hosts = cfg["openstack-deploy:hosts"]
    controller = next(h for h in hosts if "controller" in h["roles"])
    compute = next(h for h in hosts if "compute" in h["roles"])
    addresses = list(TEST_NET.hosts())[9:]  # .10 (the example's controller) and up
    cfg["openstack-deploy:managementCidr"] = str(TEST_NET)
    cfg["openstack-deploy:hosts"] = [dict(controller, address=str(addresses[0]))] + [
        dict(copy.deepcopy(compute), name=f"compute{i}", address=str(addresses[i])) for i in range(1, computes + 1)]
    cfg["openstack-deploy:ssh"] = dict(cfg["openstack-deploy:ssh"], privateKeyFile=key_file)
    return doc


def write_key(path: str) -> None:
    """A throwaway Ed25519 key: the stack config requires one; nothing is ever signed with it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)


def descendants(root: int) -> list[int]:
    """Every process under `root`, from /proc (the children lists of each task)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found += kids
                todo += kids
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def peak_rss_mib(pid: int) -> Optional[float]:
    """The kernel's own high-water mark of the process's resident set (VmHWM), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def role(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    if any(a.endswith(b"pulumi-language-python-exec") for a in argv):
        return "program"
    if PROVIDERS.encode() in argv:
        return "providers"
    return None


def timed_preview(work: str, env: dict, stack: str) -> tuple[float, float, dict, dict]:
    """Runs the preview; returns its wall time, its CPU time, the peak RSS per role and the engine's JSON.

    CPU time: what getrusage counts for the children this process has waited for, which includes their own waited
    children (the CLI waits for the language host, the program and the plugins): less sensitive than the wall
    time to whatever else the machine runs.

    Peak memory: the kernel keeps each process's high-water mark of resident memory (VmHWM); it is read every
    50 ms for the program and the provider process found under the CLI, and the last value read before the
    process ends is its peak (less at most 50 ms of growth at its very end, when the program only waits for
    the engine). getrusage(RUSAGE_CHILDREN) would give one maximum over every descendant, the Go engine and
    plugins included, not the program's own."""
    started, used = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["pulumi", "preview", "--stack", stack, "--json", "--non-interactive"],
                                cwd=work, env=env, stdout=out, stderr=err)
        peaks: dict[str, float] = {}
        while proc.poll() is None:
            for pid in descendants(proc.pid):
                kind = role(pid)
                mib = peak_rss_mib(pid) if kind else None
                if mib is not None:
                    peaks[kind] = max(peaks.get(kind, 0.0), mib)
            time.sleep(0.05)
        seconds = time.monotonic() - started
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"preview of {stack} failed (exit {proc.returncode}):\n{stderr[-3000:]}\n{stdout[-3000:]}")
    return seconds, cpu, peaks, json.loads(stdout)


def measure(work: str, env: dict, example: dict, key_file: str, computes: int, repeat: int) -> Row:
    stack = f"scale-{computes}"
    with open(os.path.join(work, "stacks", f"Pulumi.{stack}.yaml"), "w") as f:
        yaml.safe_dump(stack_config(example, computes, key_file), f, sort_keys=False)
    subprocess.run(["pulumi", "stack", "init", stack, "--secrets-provider", "passphrase", "--no-select"], cwd=work, env=env,
                   check=True, capture_output=True)
    best: Optional[Row] = None
    for _ in range(repeat):  # the fastest of `repeat` runs: the one least disturbed by the rest of the machine
        seconds, cpu, peaks, result = timed_preview(work, env, stack)
        summary = result.get("changeSummary", {})
        if set(summary) != {"create"}:
            sys.exit(f"preview of {stack}: expected only creates on a new stack, got {summary}")
        row = Row(computes, summary["create"], seconds, cpu, peaks.get("program", 0.0), peaks.get("providers", 0.0))
        if best is None or row.seconds < best.seconds:
            best = row
    assert best is not None
    return best


def linearity(rows: list[Row], field: str) -> tuple[str, float]:
    """The cost of one more host between the last three sizes (10 -> 50 against 50 -> 100 by default): equal when
    the figure grows linearly. Returns the verdict and the ratio of the second increment to the first."""
    a, b, c = rows[-3:]
    first = (getattr(b, field) - getattr(a, field)) / (b.hosts - a.hosts)
    second = (getattr(c, field) - getattr(b, field)) / (c.hosts - b.hosts)
    ratio = second / first if first > 0 else float("inf")
    verdict = "linear" if 0.67 <= ratio <= 1.5 else ("faster than linear" if ratio > 1.5 else "slower than linear")
    return f"{verdict} ({first:.3g} per host for {a.hosts}->{b.hosts}, {second:.3g} for {b.hosts}->{c.hosts})", ratio


def table(rows: list[Row]) -> str:
    base = rows[0]
    lines = [
        "| compute hosts | resources | seconds | CPU seconds | program peak MiB | providers peak MiB | ms per resource "
        "| ratio: hosts | ratio: resources | ratio: seconds | ratio: CPU | ratio: MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.hosts} | {r.resources} | {r.seconds:.1f} | {r.cpu_seconds:.1f} | {r.program_mib:.0f} "
            f"| {r.providers_mib:.0f} | {1000 * r.seconds / r.resources:.1f} | {r.hosts / base.hosts:.0f} "
            f"| {r.resources / base.resources:.2f} | {r.seconds / base.seconds:.2f} | {r.cpu_seconds / base.cpu_seconds:.2f} "
            f"| {r.program_mib / base.program_mib:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,10,50,100", help="compute host counts, smallest first (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="previews per size; the fastest counts")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and backend (printed)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.hosts.split(","))
    if len(sizes) < 3 or sizes[-1] + 10 > TEST_NET.num_addresses - 2:
        parser.error("give at least three sizes, the largest at most 240")

    with open(os.path.join(ROOT, "stacks", "Pulumi.example.yaml")) as f:
        example = yaml.safe_load(f)
    tmp = tempfile.mkdtemp(prefix="osd-preview-scale-")
    try:
        work = os.path.join(tmp, "project")
        os.makedirs(os.path.join(work, "stacks"))
        for name in PROGRAM:  # the program without its stack files: those of this run only
            src = os.path.join(ROOT, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(work, name), ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, work)
        os.symlink(os.path.join(ROOT, "venv"), os.path.join(work, "venv"))
        os.makedirs(os.path.join(tmp, "state"))
        os.makedirs(os.path.join(tmp, "hook"))
        with open(os.path.join(tmp, "hook", "sitecustomize.py"), "w") as f:
            f.write(SITECUSTOMIZE)
        key_file = os.path.join(tmp, "id_ed25519")
        write_key(key_file)
        connect_log, hooked_log = os.path.join(tmp, "connects.log"), os.path.join(tmp, "hooked.log")
        env = dict(
            os.environ,
            PULUMI_BACKEND_URL=f"file://{tmp}/state",
            PULUMI_CONFIG_PASSPHRASE=secrets.token_urlsafe(24),  # this run's throwaway stacks only
            PYTHONPATH=os.pathsep.join(p for p in (os.path.join(tmp, "hook"), os.environ.get("PYTHONPATH")) if p),
            OSD_BENCH_CONNECT_LOG=connect_log,
            OSD_BENCH_HOOKED_LOG=hooked_log,
        )
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

        watch_self_test(env, connect_log)
        rows = []
        for n in sizes:
            rows.append(measure(work, env, example, key_file, n, args.repeat))
            print(f"  {n} compute hosts: {rows[-1].resources} resources, {rows[-1].seconds:.1f} s", file=sys.stderr)
            if os.path.exists(connect_log):
                with open(connect_log) as f:
                    sys.exit(f"a preview dialed a host (it must not touch any):\n{f.read()}")
        with open(hooked_log) as f:
            hooked = f.read()
        if "pulumi-language-python-exec" not in hooked or PROVIDERS not in hooked:
            sys.exit(f"the connection watch was not on in the program and the providers:\n{hooked}")

        print(table(rows))
        print()
        for field, what in (("seconds", "time"), ("cpu_seconds", "CPU time"), ("program_mib", "program memory"),
                            ("resources", "resources")):
            print(f"{what}: {linearity(rows, field)[0]}")
        print("no connection outside this machine was attempted")
        if args.json:
            with open(args.json, "w") as f:
                json.dump([asdict(r) for r in rows], f, indent=1)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
