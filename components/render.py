"""Template rendering and INI overrides: pure functions, no I/O besides reading the templates folder.

Templates live in `templates/<service>/<file>.j2`; a platform that needs a different file has
`templates/<service>/<profile>/<file>.j2`, found first. Rendering is strict: a missing variable is an
error, not an empty string. Operator overrides ({section: {option: value}}) are merged into the rendered
INI line by line, so the template's comments and order stay as they are.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any, Mapping

import jinja2

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_env.filters["shell_quote"] = shlex.quote


def template_name(service: str, filename: str, profile: str) -> str:
    specific = f"{service}/{profile}/{filename}.j2"
    return specific if os.path.exists(os.path.join(TEMPLATES, specific)) else f"{service}/{filename}.j2"


def render(service: str, filename: str, profile: str, **values: Any) -> str:
    return _env.get_template(template_name(service, filename, profile)).render(**values)


def ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(ini_value(v) for v in value)
    return str(value)


_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^\s*([^#;=\s][^=]*?)\s*=")


def merge_ini(text: str, overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """Sets each overridden option in place (replacing the line that sets it, or adding it at the end of
    its section, or adding the section at the end). Options not overridden are left as rendered."""
    if not overrides:
        return text
    lines = text.splitlines()
    pending = {section: dict(options) for section, options in overrides.items()}
    out: list[str] = []
    section = None

    def flush(name):
        for option, value in pending.pop(name, {}).items():
            out.append(f"{option} = {ini_value(value)}")

    for line in lines:
        header = _SECTION.match(line)
        if header:
            if section in pending:
                blanks = []
                while out and not out[-1].strip():  # new options go right after the section's last line
                    blanks.append(out.pop())
                flush(section)
                out.extend(blanks)
            section = header.group(1)
            out.append(line)
            continue
        option = _OPTION.match(line)
        if option and section in pending and option.group(1) in pending[section]:
            out.append(f"{option.group(1)} = {ini_value(pending[section].pop(option.group(1)))}")
            continue
        out.append(line)
    if section in pending:
        flush(section)
    for name in list(pending):
        out.extend(["", f"[{name}]"])
        flush(name)
    return "\n".join(out) + "\n"


def service_overrides(stack: Mapping[str, Any], host: Mapping[str, Any], service: str) -> dict[str, dict[str, Any]]:
    """The stack-wide overrides of `service`, then the host's own on top."""
    return merged_overrides(stack.get(service, {}), host.get(service, {}))


def merged_overrides(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stack-wide overrides, then per-host ones on top, section by section."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, options in (layer or {}).items():
            merged.setdefault(section, {}).update(options)
    return merged
