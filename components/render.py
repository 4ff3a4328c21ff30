"""Template rendering and INI overrides: pure functions, no I/O besides reading the templates folder.

Templates live in `templates/<service>/<file>.j2`; a platform that needs a different file has
`templates/<service>/<profile>/<file>.j2`, found first. Rendering is strict: a missing variable is an
error, not an empty string. Operator overrides ({section: {option: value}}) are merged into the rendered
INI line by line, so the template's comments and order stay as they are.

Every value a template writes is escaped for the syntax of the file it lands in (`SYNTAX`), by the environment
itself: each `{{ ... }}` passes through the syntax's writer, so the program that reads the file reads back exactly
the value, or the render fails. Nothing depends on a template remembering a filter. No message here ever shows
a value: it may be a password.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any, Callable, Mapping
from urllib.parse import quote

import jinja2
from markupsafe import Markup

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


class RenderError(ValueError):
    """A value that cannot be written into its file as it is (the config parser rejects such values first)."""


def _one_line(text: str, where: str) -> str:
    if not text.isprintable():
        raise RenderError(f"{where}: a value with a line break or another control character cannot be written")
    return text


def oslo_value(value: Any, where: str = "an oslo.config file") -> str:
    """`value` as oslo.config reads it back exactly: `$` doubled (it starts a substitution), and a value with
    surrounding spaces, or between a pair of the same quotes, inside one more pair of quotes (oslo strips the
    spaces, then one pair of quotes). A bool is `true`/`false`, a list comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(oslo_value(v, where) for v in value)
    text = _one_line(str(value), where).replace("$", "$$")
    if text != text.strip() or (text[:1] in ("'", '"') and text[:1] == text[-1:]):
        text = f'"{text}"'
    return text


_PLAIN = re.compile(r"[A-Za-z0-9 _.:/,@+={}-]*")


def _plain(value: Any, where: str) -> str:
    """A file whose syntax has no escaping this program relies on: only names, addresses, paths and numbers."""
    text = str(value)
    if not _PLAIN.fullmatch(text):
        raise RenderError(f"{where}: only letters, digits, spaces and _.:/,@+={{}}- can be written here")
    return text


def python_value(value: Any, where: str = "a Python settings file") -> str:
    """`value` as a Python literal the settings module reads back exactly (a string, number, boolean, None, or a
    list or mapping of those)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RenderError(f"{where}: a number that is not finite cannot be written")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{python_value(str(k), where)}: {python_value(v, where)}" for k, v in value.items()) + "}"
    raise RenderError(f"{where}: a {type(value).__name__} cannot be written")


WRITERS: dict[str, Callable[[Any, str], str]] = {
    "oslo": oslo_value,  # INI files the OpenStack services read with oslo.config
    "shell": lambda value, where: shlex.quote(str(value)),  # files a shell sources
    "yaml": lambda value, where: json.dumps(value, ensure_ascii=False),  # a JSON string is a YAML one
    "plain": _plain,
    "python": python_value,  # the dashboard's Django settings
}
# Each template's syntax, by `service/file`; a template not listed is "plain".
SYNTAX = {
    "keystone/keystone.conf": "oslo",
    "glance/glance-api.conf": "oslo",
    "placement/placement.conf": "oslo",
    "nova/nova.conf": "oslo",
    "nova/nova-compute.conf": "oslo",
    "neutron/neutron.conf": "oslo",
    "neutron/ml2_conf.ini": "oslo",
    "neutron/openvswitch_agent.ini": "oslo",
    "neutron/dhcp_agent.ini": "oslo",
    "neutron/l3_agent.ini": "oslo",
    "neutron/metadata_agent.ini": "oslo",
    "keystone/admin-openrc": "shell",
    "keystone/clouds.yaml": "yaml",
    "horizon/openstack_deploy.py": "python",
}


SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # a Django setting's name


def setting_name(name: str) -> Markup:
    """A Django setting's name, written as it is (a name, not a value: no quotes)."""
    if not SETTING_NAME.fullmatch(name):
        raise RenderError(f"setting name {name!r}: only upper-case letters, digits and _ are allowed")
    return Markup(name)


def _environment(syntax: str) -> jinja2.Environment:
    write = WRITERS[syntax]

    def finalize(value):
        # A macro's output (Markup under autoescape) was written value by value already; the rest is written here.
        return value if isinstance(value, Markup) else Markup(write(value, f"a {syntax} file"))

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,  # (with `finalize`: every value through its writer; never HTML escaping)
        finalize=finalize,
    )
    environment.filters["setting_name"] = setting_name
    return environment


_ENVIRONMENTS = {syntax: _environment(syntax) for syntax in WRITERS}


def template_name(service: str, filename: str, profile: str) -> str:
    specific = f"{service}/{profile}/{filename}.j2"
    return specific if os.path.exists(os.path.join(TEMPLATES, specific)) else f"{service}/{filename}.j2"


def syntax(service: str, filename: str) -> str:
    return SYNTAX.get(f"{service}/{filename}", "plain")


def render(service: str, filename: str, profile: str, **values: Any) -> str:
    environment = _ENVIRONMENTS[syntax(service, filename)]
    return environment.get_template(template_name(service, filename, profile)).render(**values)


def written_forms(secret: str) -> set[str]:
    """Every form in which a file of this program can hold `secret`: as it is, percent-encoded in a URL, and each
    of those as every file syntax's writer writes it."""
    forms = {secret, quote(secret, safe="")}
    for form in list(forms):
        for syntax, write in WRITERS.items():
            try:
                forms.add(write(form, f"a {syntax} file"))
            except RenderError:
                pass  # (a value no file of that syntax can hold, such as a key of several lines in an INI file)
    return {f for f in forms if f}


def masked(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every written form of every secret replaced by `<secret NAME>` (longest forms first), so that a
    diff of two renders can be shown: a reviewer sees which secret sits where, never its value."""
    forms = sorted(((form, name) for name, secret in secrets.items() if secret for form in written_forms(secret)),
                   key=lambda item: -len(item[0]))
    for form, name in forms:
        text = text.replace(form, f"<secret {name}>")
    return text


_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^\s*([^#;=\s][^=]*?)\s*=")
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # an INI section or option name that oslo.config reads back as written


def _name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise RenderError(f"INI section or option name {name!r}: only letters, digits and _.- are allowed")
    return name


def merge_ini(text: str, overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """Sets each overridden option in place (replacing the line that sets it, or adding it at the end of
    its section, or adding the section at the end). Options not overridden are left as rendered."""
    if not overrides:
        return text
    for section, options in overrides.items():
        _name(section)
        for option in options:
            _name(option)
    lines = text.splitlines()
    pending = {section: dict(options) for section, options in overrides.items()}
    out: list[str] = []
    section = None

    def flush(name):
        for option, value in pending.pop(name, {}).items():
            out.append(f"{option} = {oslo_value(value)}")

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
            out.append(f"{option.group(1)} = {oslo_value(pending[section].pop(option.group(1)))}")
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
