"""A deploy's timeline as a picture (run by scripts/timeline, and by `scripts/lab up --timeline FILE.png`).

From the engine's events of one `pulumi up`: one bar per step that does work (create, update, replace, delete:
from its resourcePreEvent to its resOutputsEvent, or to its failure), in one lane per host and one each for the
cloud's APIs (the `openstack:*` resources) and this machine (the lab, the secrets, the guest image), coloured by
service; the critical path outlined in red: from the step that finished last back, each time, to what it waited
for that finished last (what a step waited for is in the stack's state after the run).

Two sources of events: the CLI's `--event-log` file (its timestamps are whole seconds), or the Automation API's
`on_event` through a `Recorder`, which stamps each event as it arrives (the API reads the engine's log every 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from pulumi.automation.events import EngineEvent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ASSEMBLY = "openstack-deploy:index:Cloud"  # the parent of every service: a step's service is the component below it
ACCESS = "pulumi-python:dynamic/remote:HostAccess"  # a host's SSH access (`cloud-{host}-ssh`)
ON_A_HOST = ("pulumi-python:dynamic/remote:", "pulumi-python:dynamic/mariadb:")
CLOUD_APIS, THIS_MACHINE, SOME_HOST = "cloud APIs", "this machine", "a host (not known)"
# The ops that do work, as drawn. A replacement's work is its create-replacement (the `replace` step itself is
# logical); the replaced resource's removal is a delete like any other.
OPS = {"create": "create", "update": "update", "create-replacement": "replace",
       "delete": "delete", "delete-replaced": "delete"}

# Fixed colours for the project's services (no red: red marks the critical path); any other takes a spare one.
COLOURS = {
    "lab": "#7f7f7f", "passwords": "#c7c7c7", "cloud": "#dadada", "providers": "#e8e8e8", "host": "#a5a5a5",
    "mariadb": "#8c564b", "rabbitmq": "#ff7f0e", "memcached": "#bcbd22", "keystone": "#9467bd",
    "placement": "#e377c2", "horizon": "#c5b0d5", "glance": "#17becf", "nova": "#1f77b4",
    "nova-compute": "#aec7e8", "neutron": "#2ca02c", "post-deploy": "#98df8a",
}
SPARE_COLOURS = ("#393b79", "#637939", "#8c6d31", "#7b4173", "#5254a3", "#9c9ede", "#cedb9c", "#e7cb94")

Stamped = tuple[float, EngineEvent]


@dataclass(eq=False)  # (steps are told apart by identity: a replaced resource's two steps share its URN)
class Step:
    urn: str
    op: str  # create, update, replace or delete
    start: float  # seconds from the run's start
    started: int  # the position of its first event in the run: the order within a whole second
    end: float = 0.0
    ended: int = 0
    status: str = "running"  # then done or failed; still running when the events end (the run was cut off)
    lane: str = ""
    service: str = ""

    @property
    def name(self) -> str:
        return name_of(self.urn)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    lanes: dict[str, list[Step]]  # in drawing order (the hosts in the stack's order first), each by start
    critical: list[Step]  # in run order, ending with the step that finished last
    duration: float  # seconds from the run's first event to its last
    title: str = ""

    @property
    def steps(self) -> list[Step]:
        return [step for steps in self.lanes.values() for step in steps]


class Recorder:
    """An `on_event` callback that keeps each engine event with the time it arrived: the engine's own timestamps
    are whole seconds, too coarse for the many steps that take less."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.events: list[Stamped] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append((self.clock(), event))

    def __iter__(self) -> Iterator[Stamped]:
        return iter(self.events)


def read_event_log(path: str) -> list[Stamped]:
    """The events of a CLI `--event-log` file (JSON lines), stamped with their own timestamps."""
    out = []
    with open(path) as f:
        for line in f:
            event = _parse(line)
            if event is not None:
                out.append((float(event.timestamp), event))
    return out


def _parse(line: str) -> Optional[EngineEvent]:
    try:
        return EngineEvent.from_json(json.loads(line))
    except ValueError:  # a line cut off by a crash, or an op newer than this SDK knows (none that is drawn)
        return None


# A URN is `urn:pulumi:STACK::PROJECT::ancestors$...$type::name`: the types of every ancestor are in it.
def name_of(urn: str) -> str:
    return urn.split("::", 3)[-1]


def types_of(urn: str) -> list[str]:
    return urn.split("::", 3)[2].split("$")


def type_of(urn: str) -> str:
    return types_of(urn)[-1]


def _stamped(events: Iterable[Union[Stamped, EngineEvent]]) -> list[Stamped]:
    """Recorded pairs as they are; bare events with the engine's own timestamp."""
    return [e if isinstance(e, tuple) else (float(e.timestamp), e) for e in events]


def _this_run(events: list[Stamped]) -> list[Stamped]:
    """The events of the update itself, from its prelude: a log that holds a preview before it (each operation
    starts with a prelude) is read from the last one."""
    starts = [i for i, (_, event) in enumerate(events) if event.prelude_event is not None]
    return events[starts[-1]:] if starts else events


def _op(meta: Any) -> str:
    return getattr(meta.op, "value", meta.op)


def _does_work(meta: Any) -> bool:
    """A resource's own step, not a component's registration (a component does nothing itself)."""
    state = meta.new or meta.old
    if state is not None and state.custom is not None:
        return bool(state.custom)
    return not meta.type.startswith("pulumi:pulumi:")


def steps_from(events: Iterable[Union[Stamped, EngineEvent]]) -> tuple[list[Step], float]:
    """The steps that do work, timed in seconds from the run's first event, and the run's length."""
    run = _this_run(_stamped(events))
    if not run:
        return [], 0.0
    zero = run[0][0]
    running: dict[tuple[str, str], Step] = {}  # by URN and the engine's op (a replacement has two steps)
    steps = []
    for i, (stamp, event) in enumerate(run):
        pre, diag = event.resource_pre_event, event.diagnostic_event
        finished = event.res_outputs_event or event.res_op_failed_event
        if pre is not None and not pre.planning and _op(pre.metadata) in OPS and _does_work(pre.metadata):
            step = Step(pre.metadata.urn, OPS[_op(pre.metadata)], start=stamp - zero, started=i)
            running[(step.urn, _op(pre.metadata))] = step
            steps.append(step)
        elif finished is not None:
            step = running.pop((finished.metadata.urn, _op(finished.metadata)), None)
            if step is not None:
                _finish(step, stamp - zero, i, "done" if event.res_outputs_event else "failed")
        elif diag is not None and diag.severity == "error" and diag.urn:  # a step's failure is told here first
            for key in [key for key in running if key[0] == diag.urn]:
                _finish(running.pop(key), stamp - zero, i, "failed")
    length = run[-1][0] - zero
    for step in running.values():
        step.end, step.ended = length, len(run)
    return steps, length


def _finish(step: Step, at: float, position: int, status: str) -> None:
    step.end, step.ended, step.status = at, position, status


def host_named(name: str, hosts: Sequence[str]) -> Optional[str]:
    """The host a resource's name is about (`{component}-{host}-{step}`): the longest host name that is a
    whole part of it (`compute10` is not `compute1`)."""
    found = [h for h in hosts if f"-{h}-" in f"-{name}-"]
    return max(found, key=len) if found else None


def lane_of(urn: str, hosts: Sequence[str], dependencies: Iterable[str] = ()) -> str:
    """Where a step runs. A step on a host runs over the connection of that host's SSH access, so it depends on
    it: that names its host where its own name names none (`keystone-database`) or another one
    (`nova-compute-compute1-records` runs on the controller). The connection itself is a secret, not in the
    events. Without the state (a deleted resource) the name tells."""
    kind = type_of(urn)
    if kind.startswith("openstack:") or kind == "pulumi:providers:openstack":
        return CLOUD_APIS
    if not kind.startswith(ON_A_HOST):
        return THIS_MACHINE
    via = {host_named(name_of(d), hosts) for d in dependencies if type_of(d) == ACCESS}
    if len(via) == 1 and None not in via:
        return via.pop()
    return host_named(name_of(urn), hosts) or SOME_HOST


def _kebab(kind: str) -> str:
    """`openstack-deploy:openstack:NovaCompute` -> `nova-compute`; `MariaDB` stays one word."""
    return re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", "-", kind.split(":")[-1]).lower()


def service_of(urn: str) -> str:
    """A step's service: the outermost component below the assembly (`nova` for Nova's steps and those of its
    Keystone registration); `cloud` for the assembly's own."""
    ancestors = types_of(urn)[:-1]
    owners = [t for t in ancestors if t != ASSEMBLY] or ancestors
    if owners:
        return _kebab(owners[0])
    return "providers" if type_of(urn).startswith("pulumi:providers:") else "stack"


def dependencies(resources: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """What each resource waited for, from the stack's state: its `dependencies` and its provider, a component
    standing for every resource under it (found by `parent`)."""
    children: dict[str, list[str]] = {}
    for r in resources:
        children.setdefault(r.get("parent", ""), []).append(r["urn"])
    components = {r["urn"] for r in resources if not r.get("custom", False)}
    expanded: dict[str, set[str]] = {}

    def expand(urn: str) -> set[str]:
        if urn not in components:
            return {urn}
        if urn not in expanded:
            expanded[urn] = set().union(*(expand(child) for child in children.get(urn, ())))
        return expanded[urn]

    needs = {}
    for r in resources:
        direct = [*r.get("dependencies", ()), *([r["provider"].rsplit("::", 1)[0]] if r.get("provider") else [])]
        needs[r["urn"]] = set().union(*(expand(d) for d in direct))
    return needs


def critical_path(steps: Sequence[Step], needs: Mapping[str, set[str]]) -> list[Step]:
    """From the step that finished last back to the run's start: at each step, of the steps it waited for, the
    one that finished last (its delay was this step's). A delete waits for the program's steps to be done, and
    the state after the run no longer holds a deleted resource: what a delete waited for is whatever finished
    last before it."""
    if not steps:
        return []
    by_urn: dict[str, list[Step]] = {}
    for step in steps:
        by_urn.setdefault(step.urn, []).append(step)
    path = [max(steps, key=lambda s: s.ended)]
    while True:
        step = path[-1]
        # (its own URN too: a replacement that deletes first waits for that delete)
        waited = steps if step.op == "delete" else \
            [s for urn in {*needs.get(step.urn, ()), step.urn} for s in by_urn.get(urn, ())]
        before = [s for s in waited if s.ended < step.started]
        if not before:
            return path[::-1]
        path.append(max(before, key=lambda s: s.ended))


def _host_names(hosts: Sequence[Union[str, Mapping[str, Any]]]) -> list[str]:
    return [h if isinstance(h, str) else h["name"] for h in hosts]


def _took(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def build(events: Iterable[Union[Stamped, EngineEvent]], state_resources: Sequence[Mapping[str, Any]],
          hosts: Sequence[Union[str, Mapping[str, Any]]], title: str = "") -> Timeline:
    """The timeline of a run: its steps in lanes, with their services, and its critical path."""
    names = _host_names(hosts)
    steps, length = steps_from(events)
    recorded = {r["urn"]: r for r in state_resources}
    for step in steps:
        step.lane = lane_of(step.urn, names, recorded.get(step.urn, {}).get("dependencies", ()))
        step.service = service_of(step.urn)
    lanes: dict[str, list[Step]] = {lane: [] for lane in [*names, CLOUD_APIS, THIS_MACHINE]}
    for step in sorted(steps, key=lambda s: s.started):
        lanes.setdefault(step.lane, []).append(step)
    heading = f"{len(steps)} steps in {_took(length)}"
    return Timeline(lanes, critical_path(steps, dependencies(state_resources)), length,
                    f"{title}: {heading}" if title else heading)


def _slots(steps: Sequence[Step], least: float) -> dict[Step, int]:
    """A row within the lane for each step: steps that overlap in time on different rows (the first free one).
    A step too short to measure (the CLI's log stamps whole seconds) takes no room: the dozens of such steps a run
    starts with would each get a row of their own, their slivers drawn over each other's do no harm."""
    ends: list[float] = []
    slot = {}
    for step in sorted(steps, key=lambda s: (s.start, s.started)):
        free = next((i for i, end in enumerate(ends) if end <= step.start), len(ends))
        end = step.start + (step.duration if step.duration >= least else 0.0)
        if free == len(ends):
            ends.append(end)
        else:
            ends[free] = end
        slot[step] = free
    return slot


def _legend_order(service: str) -> tuple[int, str]:
    known = list(COLOURS)  # (in install order)
    return (known.index(service), "") if service in known else (len(known), service)


def _colours(services: Iterable[str]) -> dict[str, str]:
    spare = iter(SPARE_COLOURS * 4)
    out = {}
    for service in services:
        if service not in out:
            out[service] = COLOURS.get(service) or next(spare, "#444444")
    return out


def draw(timeline: Timeline, out_path: str) -> None:
    """The picture: lanes top down, each as tall as the most steps it ran at once; time in seconds."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    span = max(timeline.duration, 1.0)
    least = span / 500  # a step shorter than this still shows, as a sliver
    slots = {lane: _slots(steps, least) for lane, steps in timeline.lanes.items()}
    rows = {lane: max(slots[lane].values(), default=0) + 1 for lane in slots}
    fig = Figure(figsize=(16, 1.8 + 0.22 * sum(rows.values())), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(sorted({s.service for s in timeline.steps}, key=_legend_order))
    critical = set(timeline.critical)
    middle: dict[Step, float] = {}
    top, ticks = float(sum(rows.values())), []
    for i, (lane, steps) in enumerate(timeline.lanes.items()):
        base = top - rows[lane]
        if i % 2 == 0:
            ax.axhspan(base, top, color="#f4f4f4", zorder=0)
        ticks.append((base + rows[lane] / 2, lane))
        for step in steps:
            middle[step] = top - slots[lane][step] - 0.5  # the first row at the lane's top
            ax.barh(middle[step], max(step.duration, least), left=step.start, height=0.8, zorder=2,
                    color=colours[step.service], **_outline(step, step in critical))
        top = base
    _mark_path(ax, timeline.critical, middle, span, least)
    ax.set_yticks([y for y, _ in ticks], [lane for _, lane in ticks])
    ax.set_ylim(0, sum(rows.values()))
    ax.set_xlim(0, span * 1.01)
    ax.set_xlabel("seconds from the start of the run")
    ax.grid(axis="x", color="#dddddd", zorder=1)
    ax.set_axisbelow(True)
    ax.set_title(timeline.title)
    legend = [Patch(color=colours[s], label=s) for s in colours]
    legend += [Patch(facecolor="white", edgecolor="red", linewidth=1.5, label="critical path"),
               Patch(facecolor="white", edgecolor="black", hatch="////", label="failed"),
               Patch(facecolor="white", edgecolor="black", hatch="..", label="cut off")]
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    fig.savefig(out_path)


def _outline(step: Step, critical: bool) -> dict[str, Any]:
    hatch = {"failed": "////", "running": ".."}.get(step.status)
    if critical:
        return {"edgecolor": "red", "linewidth": 1.5, "hatch": hatch}
    return {"edgecolor": "black" if hatch else "none", "linewidth": 0.5, "hatch": hatch}


def _mark_path(ax: Any, path: Sequence[Step], middle: Mapping[Step, float], span: float, least: float) -> None:
    """The critical path's bars joined, and the long ones named beside them (left of those late in the run): a
    run of short steps would only overprint each other's names (the summary lists them all)."""
    for before, after in zip(path, path[1:]):
        ax.plot([before.end, after.start], [middle[before], middle[after]], color="red", linewidth=0.6,
                linestyle=":", zorder=3)
    for step in (s for s in path if s.duration >= span / 80):
        width = max(step.duration, least)
        if step.duration >= span / 8:  # room for its name inside
            x, align = step.start + least, "left"
        elif step.end > span * 0.75:
            x, align = step.start - least, "right"
        else:
            x, align = step.start + width + least, "left"
        ax.text(x, middle[step], step.name, fontsize=6, color="darkred", va="center", ha=align, zorder=4,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5})


def render(events: Iterable[Union[Stamped, EngineEvent]], state_resources: Sequence[Mapping[str, Any]],
           hosts: Sequence[Union[str, Mapping[str, Any]]], out_path: str, title: str = "") -> Timeline:
    """The timeline of a run drawn to `out_path` (PNG). `events`: a Recorder, the pairs of read_event_log, or
    bare engine events (then stamped with their whole-second timestamps); `state_resources`: the stack's
    resources after the run (`export_stack().deployment["resources"]`); `hosts`: names or the stack's hosts."""
    timeline = build(events, state_resources, hosts, title)
    draw(timeline, out_path)
    return timeline


def summary(timeline: Timeline, out_path: str) -> str:
    lines = [f"{out_path}: {timeline.title}", "critical path (start, duration, where, step):"]
    lines += [f"  {s.start:7.1f} s {s.duration:7.1f} s  {s.lane:<14} {s.name}" for s in timeline.critical]
    return "\n".join(lines) + "\n"


def _resources(state: Mapping[str, Any]) -> list[dict]:
    """The resources of `stack export` output (or of its `deployment` alone)."""
    return list(state.get("deployment", state).get("resources") or [])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--event-log", required=True, help="the engine's events of the up (pulumi up --event-log)")
    parser.add_argument("--state", help="the stack's state after the up, as `stack export` wrote it "
                                        "(default: exported now)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    from pulumi import automation as auto

    stack = auto.select_stack(stack_name=args.stack, work_dir=ROOT)
    hosts = [h["name"] for h in json.loads(stack.get_config("openstack-deploy:hosts").value)]
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    else:
        state = stack.export_stack().deployment
    resources = _resources(state)
    timeline = render(read_event_log(args.event_log), resources, hosts, args.out, title=args.stack)
    known = {r["urn"] for r in resources}
    if timeline.steps and not any(step.urn in known for step in timeline.steps):
        print("timeline: the state holds none of the run's resources (another stack's state, or a run that only "
              "deleted): what each step waited for is not known, the critical path is only the last step",
              file=sys.stderr)
    sys.stdout.write(summary(timeline, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
