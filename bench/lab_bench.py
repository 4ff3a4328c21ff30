"""The lab's deploy against what this machine allows, in one run on the same nodes (run by bench/lab-deploy).

Every figure is taken in this run, so that the ratios compare like with like on a noisy machine:
- deploy: `scripts/lab up` of the whole cloud on bare nodes (booted first, not timed), the package cache warm;
- no-op `up`, `preview`, `preview --refresh` (every host step, grant and entity read) of the deployed lab, each
  required to change nothing, then `destroy`;
- the package floor: on fresh bare nodes, each host's package sets as the deploy recorded them (the same install
  commands, run by the same code, components/providers/remote.py) side by side, nothing configured: what the
  deploy cannot go below; the ratio deploy / floor is what the rest of the deploy costs;
- the dependency graph's worth: the same deploy with `--parallel 1` (every step in series) on fresh bare nodes;
  the ratio serial / default;
- preview cost against cloud size: bench/preview_scale.py at 10, 50 and 100 compute hosts (hosts that do not
  exist; nothing is dialled), time and peak memory of the program, and whether they grow linearly.

It prints one table (and `--json FILE` writes it) and draws the deploy's timeline (scripts/timeline.py). The lab is
left down (the base image and package cache kept).
The floor dials the lab's new nodes without the host keys the deploy pinned (they are new nodes with new keys).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from components.providers import remote  # noqa: E402

LOGS = os.path.join(tempfile.gettempdir(), "osd-bench")


def run(name: str, *argv: str, env: Optional[dict] = None) -> float:
    """Wall seconds of one command (its output in LOGS/NAME.log); a failure ends the bench naming the log."""
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, f"{name}.log")
    started = time.monotonic()
    with open(log, "w") as f:
        status = subprocess.run(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env=dict(os.environ, **(env or {}))).returncode
    seconds = time.monotonic() - started
    if status != 0:
        sys.exit(f"bench: {name} failed (exit {status}); see {log}")
    print(f"  {name}: {seconds:.1f} s", file=sys.stderr)
    return seconds


def lab(name: str, *args: str) -> float:
    return run(name, os.path.join(ROOT, "scripts", "lab"), *args)


def bare_nodes(name: str) -> float:
    return lab(name, "nodes")


def _state() -> list[dict]:
    exported = subprocess.run([os.path.join(ROOT, "scripts", "pulumi"), "stack", "export", "--stack", "lab",
                               "--show-secrets"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(exported)["deployment"]["resources"]


def _plain(value):
    return json.loads(value["plaintext"]) if isinstance(value, dict) and "plaintext" in value else value


def package_sets() -> list[tuple[dict, str, str]]:
    """(connection without its pinned key, install command, what) of every package set in the lab's state."""
    found = []
    for r in _state():
        if r["type"] == "pulumi-python:dynamic/remote:Packages":
            outs = r["outputs"]
            conn = {k: v for k, v in _plain(outs["connection"]).items() if k != "host_key"}
            names = " ".join(outs["packages"])
            found.append((conn, outs["install"].format(packages=names), r["urn"].rsplit("::", 1)[1]))
    if not found:
        sys.exit("bench: the deployed lab's state has no package set")
    return found


def with_new_nodes_key(sets: list[tuple[dict, str, str]]) -> list[tuple[dict, str, str]]:
    """The package sets with the lab's current SSH key (the nodes made again have a new one)."""
    key = next(_plain(r["outputs"]["private_key"]) for r in _state() if r["urn"].endswith("::lab-ssh-key"))
    return [(dict(conn, private_key=key), script, what) for conn, script, what in sets]


def floor(sets: list[tuple[dict, str, str]]) -> float:
    """Every host's package sets at once (a host's own sets one after the other), as the deploy runs them."""
    by_host: dict[str, list] = {}
    for conn, script, what in sets:
        by_host.setdefault(conn["host"], []).append((conn, script, what))
    failures: list[str] = []

    def install(items):
        for conn, script, what in items:
            try:
                remote.run_on(conn, script, None, what, "packages")
            except Exception as e:  # noqa: BLE001 (reported below, with the host)
                failures.append(str(e))
                return

    started = time.monotonic()
    threads = [threading.Thread(target=install, args=(items,)) for items in by_host.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    if failures:
        sys.exit("bench: the package floor failed: " + "; ".join(failures))
    print(f"  package floor: {seconds:.1f} s", file=sys.stderr)
    return seconds


def preview_scale(hosts: str) -> list[dict]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run("preview-scale", os.path.join(ROOT, "bench", "preview-scale"), "--hosts", hosts, "--json", out.name)
        with open(out.name) as f:
            return json.load(f)


def table(figures: list[tuple[str, str, str]]) -> str:
    lines = ["| figure | value | ratio |", "| --- | --- | --- |"]
    lines += [f"| {what} | {value} | {ratio} |" for what, value, ratio in figures]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="empty the package cache and base image first")
    parser.add_argument("--no-serial", action="store_true", help="leave out the --parallel 1 deploy")
    parser.add_argument("--hosts", default="10,50,100", help="preview-scale's compute host counts (%(default)s)")
    parser.add_argument("--json", help="also write the table's figures to this file")
    parser.add_argument("--timeline", default=os.path.join(LOGS, "deploy-timeline.png"),
                        help="the deploy's timeline picture (default %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "openstack-lab")  # the lab's own (scripts/lab)

    lab("destroy-before", "destroy")
    if args.cold:
        lab("purge", "purge")
    bare_nodes("bare-nodes")
    events = os.path.join(LOGS, "deploy.events.jsonl")
    if os.path.exists(events):
        os.remove(events)
    # (as `scripts/lab up --timeline`, but the picture is drawn after the deploy's time is taken)
    deploy = run("deploy", os.path.join(ROOT, "scripts", "pulumi"), "up", "--stack", "lab", "--yes", "--skip-preview",
                 "--event-log", events, env={"PULUMI_DEBUG_COMMANDS": "true"})
    run("timeline", os.path.join(ROOT, "scripts", "timeline"), "--stack", "lab", "--event-log", events,
        "--out", args.timeline)
    noop = lab("no-op-up", "up", "--expect-no-changes")
    preview = lab("preview", "preview", "--expect-no-changes")
    refresh = lab("preview-refresh", "preview", "--refresh", "--expect-no-changes")
    sets = package_sets()
    destroy = lab("destroy", "destroy")

    bare_nodes("bare-nodes-floor")
    package_floor = floor(with_new_nodes_key(sets))
    lab("destroy-floor", "destroy")

    serial = None
    if not args.no_serial:
        bare_nodes("bare-nodes-serial")
        serial = lab("deploy-parallel-1", "up", "--parallel", "1")
        lab("destroy-serial", "destroy")

    rows = preview_scale(args.hosts)

    figures = [
        ("package floor: each host's package sets on fresh nodes, side by side, nothing configured",
         f"{package_floor:.1f} s", "1.00"),
        ("deploy from bare nodes (warm package cache)", f"{deploy:.1f} s", f"{deploy / package_floor:.2f} x floor"),
    ]
    if serial is not None:
        figures.append(("the same deploy with --parallel 1 (every step in series)", f"{serial:.1f} s",
                        f"{serial / deploy:.2f} x deploy"))
    figures += [
        ("no-op up (no change)", f"{noop:.1f} s", f"{noop / deploy:.3f} x deploy"),
        ("preview (no change)", f"{preview:.1f} s", f"{preview / deploy:.3f} x deploy"),
        ("preview --refresh (every step, grant and entity read; no change)", f"{refresh:.1f} s",
         f"{refresh / deploy:.3f} x deploy"),
        ("destroy of the deployed lab", f"{destroy:.1f} s", f"{destroy / deploy:.2f} x deploy"),
    ]
    first = rows[0]
    for row in rows:
        figures.append((f"preview of a stack with {row['hosts']} compute hosts ({row['resources']} resources)",
                        f"{row['seconds']:.1f} s, program peak {row['program_mib']:.0f} MiB",
                        f"{row['seconds'] / first['seconds']:.2f} x time, {row['program_mib'] / first['program_mib']:.2f} "
                        f"x memory, {row['resources'] / first['resources']:.2f} x resources of {first['hosts']} hosts"))
    print(table(figures))
    print(f"\nthe deploy's timeline: {args.timeline}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"figure": w, "value": v, "ratio": r} for w, v, r in figures], f, indent=1)


if __name__ == "__main__":
    main()
