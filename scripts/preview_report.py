"""A preview as a reviewer reads it in a pull request (run by scripts/preview-report).

Runs `preview` (optionally with `--refresh`) through the Automation API, collects the engine's events, and
renders Markdown: per host and per service, which files change (a unified diff; a file holding secrets is
diffed in the masked text the program records beside it, `shown`: the program replaced every password it
knows by `<secret NAME>`), which services restart, which one-off steps run, what is created or deleted, and the
drift the refresh found. The engine itself shows secret values as `[secret]`; this report never prints a
secret input or output at all.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown value during a preview
SECRET = "[secret]"  # how the engine's events show a secret value
CHANGES = ("create", "update", "replace", "delete")
MAX_DIFF_LINES = 80


@dataclass
class Step:
    op: str
    urn: str
    type: str
    old_inputs: dict = field(default_factory=dict)
    old_outputs: dict = field(default_factory=dict)
    new_inputs: dict = field(default_factory=dict)
    was_in_state: bool = False  # a refresh read it (so a create means it was gone)

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]

    @property
    def drift(self) -> bool:
        """Changed by hand, not by this program: the program asks for what it asked before."""
        if self.op == "create":
            return self.was_in_state
        return self.op in ("update", "replace") and _inputs(self.old_inputs) == _inputs(self.new_inputs)


def _inputs(values: dict) -> dict:
    return {k: v for k, v in (values or {}).items() if k != "__provider"}


def steps_from(events: Iterable[Any]) -> list[Step]:
    """The steps of a preview that change something, from the Automation API's engine events."""
    refreshed: set[str] = set()
    found: dict[str, Step] = {}
    for event in events:
        meta = getattr(event, "resource_pre_event", None)
        meta = meta.metadata if meta else None
        if meta is None:
            continue
        op = getattr(meta.op, "value", meta.op)
        if op == "refresh":
            refreshed.add(meta.urn)
            continue
        # (create-replacement and delete-replaced: the replace step says it)
        if op not in CHANGES or meta.type.startswith("pulumi:providers:"):
            continue
        old, new = meta.old, meta.new
        found[meta.urn] = Step(op=op, urn=meta.urn, type=meta.type,
                               old_inputs=dict(old.inputs or {}) if old else {},
                               old_outputs=dict(old.outputs or {}) if old else {},
                               new_inputs=dict(new.inputs or {}) if new else {})
    for step in found.values():
        step.was_in_state = step.urn in refreshed
    return list(found.values())


def where(step: Step, hosts: list[str]) -> tuple[str, str]:
    """(host, service) of a step from its name, `{service}-{host}-{step}` (host preparation is `cloud-{host}-*`)."""
    name = step.name
    service = name.split("-")[0]
    if step.type.startswith("openstack:") or not any(f"-{h}-" in f"-{name}-" for h in hosts):
        return "", service
    host = max((h for h in hosts if f"-{h}-" in f"-{name}-"), key=len)
    return host, "host" if service == "cloud" else service


def _unit(create: Any) -> Optional[str]:
    text = create if isinstance(create, str) else ""
    match = re.search(r"systemctl enable -q (\S+)", text)
    return match.group(1).strip("';&") if match else None


def _known(v: Any) -> bool:
    return isinstance(v, str) and v not in (UNKNOWN, SECRET)


def _diff(old: str, new: str, path: str) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a{path}", f"b{path}", lineterm="", n=2))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return lines


def describe(step: Step) -> list[str]:
    """Markdown lines for one step."""
    kind = step.type.split(":")[-1]
    new, old = step.new_inputs, step.old_inputs
    verb = {"create": "created", "update": "changed", "replace": "replaced", "delete": "deleted"}[step.op]
    if kind == "File":
        path = new.get("path") or old.get("path")
        if step.op == "delete":
            return [f"- file `{path}` removed"]
        head = f"- file `{path}` {'written' if step.op == 'create' else 'changes'}"
        if step.drift and step.op != "create":
            host_text = step.old_outputs.get("content")
            program = new.get("shown") if new.get("shown") is not None else new.get("content")
            if _known(host_text) and _known(program) and new.get("shown") is None:
                return [head + ": edited on the host, put back as the program writes it", "",
                        "  ```diff", *(f"  {line}" for line in _diff(host_text, program, path)), "  ```"]
            if step.old_outputs.get("content") is None:
                return [head + ": missing on the host, written again"]
            return [head + ": differs on the host (it holds secrets: not shown), put back as the program writes it"]
        before = old.get("shown") if old.get("shown") is not None else old.get("content")
        after = new.get("shown") if new.get("shown") is not None else new.get("content")
        if step.op == "create" or not (_known(before) and _known(after)):
            return [head + ("" if step.op == "create" else " (its new text is known only when the run makes it)")]
        lines = _diff(before, after, path)
        if not lines:
            other = [k for k in ("mode", "owner", "group") if old.get(k) != new.get(k)]
            return [head + (f": {', '.join(other)}" if other else ": only in masked secret values")]
        return [head + ":", "", "  ```diff", *(f"  {line}" for line in lines), "  ```"]
    if kind == "Command":
        create = new.get("create") if _known(new.get("create")) else old.get("create")
        unit = _unit(create)
        if unit:
            if step.op == "delete":
                return [f"- stops and disables `{unit}`"]
            if step.drift:
                return [f"- starts `{unit}` again (found stopped, disabled or failed on the host)"]
            reload = "reload-or-restart" in (create or "")
            return [f"- starts `{unit}`" if step.op == "create" else f"- {'reloads' if reload else 'restarts'} `{unit}`"]
        if "-wsgi-daemons" in step.name:
            return [f"- restarts its own WSGI daemons (`{step.name}`)"]
        if step.drift:
            return [f"- `{step.name}` runs again: what it makes is gone from the host"]
        return [f"- one-off step `{step.name}` {'runs' if step.op != 'delete' else 'is undone'}"
                + (" again" if step.op in ("update", "replace") else "")]
    if kind == "Packages":
        want = set(new.get("packages") or [])
        if step.drift:
            missing = sorted(want - set(step.old_outputs.get("installed") or []))
            return [f"- packages missing on the host, installed again: {', '.join(f'`{p}`' for p in missing)}"]
        had = set(old.get("packages") or [])
        added, removed = sorted(want - had), sorted(had - want)
        parts = ([f"installs {', '.join(f'`{p}`' for p in added)}"] if added else []) + \
                ([f"removes {', '.join(f'`{p}`' for p in removed)}"] if removed else [])
        return [f"- packages: {'; '.join(parts) or verb}"]
    if kind == "Database":
        return [f"- database `{step.name}` {verb}" + (" (its grants or user differ on the server)" if step.drift else "")]
    label = kind  # (an OpenStack resource's type ends with its kind: EndpointV3, Network, Flavor...)
    why = " (gone: deleted outside this program)" if step.drift and step.op == "create" else \
        " (edited outside this program)" if step.drift else ""
    return [f"- {label} `{step.name}` {verb}{why}"]


def render(stack: str, steps: list[Step], hosts: list[str], refresh: bool) -> str:
    counts = {op: sum(1 for s in steps if s.op == op) for op in ("create", "update", "replace", "delete")}
    drift = [s for s in steps if s.drift]
    title = f"## Preview of `{stack}`" + (" (with refresh)" if refresh else "")
    out = [title, ""]
    if not steps:
        out.append("No changes." + (" No drift: every host, grant and entity reads as the program wants it." if refresh else ""))
        return "\n".join(out) + "\n"
    summary = ", ".join(f"{n} to {op}" for op, n in counts.items() if n)
    out.append(f"**{summary}**" + (f"; drift found on {len(drift)}" if refresh else ""))
    groups: dict[tuple[str, str], list[Step]] = {}
    for step in steps:
        groups.setdefault(where(step, hosts), []).append(step)
    for host in [*hosts, ""]:
        services = sorted(service for h, service in groups if h == host)
        if not services:
            continue
        out += ["", f"### {host}" if host else "### The cloud's resources (behind its APIs) and the stack's own"]
        for service in services:
            out += ["", f"**{service}**", ""]
            for step in sorted(groups[(host, service)], key=lambda s: s.name):
                out += describe(step)
    if drift:
        out += ["", "### Drift found by the refresh", ""]
        out += [f"- `{s.name}`" + (f" on {where(s, hosts)[0]}" if where(s, hosts)[0] else "") for s in drift]
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--refresh", action="store_true", help="read every host, grant and entity first (drift)")
    parser.add_argument("--out", help="write the Markdown here (default: standard output)")
    args = parser.parse_args(argv)

    from pulumi import automation as auto

    stack = auto.select_stack(stack_name=args.stack, work_dir=ROOT)
    hosts = [h["name"] for h in json.loads(stack.get_config("openstack-deploy:hosts").value)]
    events: list = []
    stack.preview(refresh=args.refresh, on_event=events.append)
    report = render(args.stack, steps_from(events), hosts, args.refresh)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    else:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
