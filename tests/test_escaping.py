"""Untrusted values, generated: every value of each kind is either rejected by the config parser before anything
is rendered, or reaches every file and command as exactly itself, read back the way the real reader reads it
(oslo.config for the services' INI files, bash for admin-openrc, YAML for clouds.yaml, URL parsing for the
database and transport URLs, a shell's `read` for what travels on stdin, shlex for command lines)."""

import copy
import os
import shlex
import subprocess
import tempfile
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oslo_config import cfg, iniparser

from components import config, render
from components.config import PASSWORDS, ConfigError
from tests.test_config import GOOD
from tests.test_wiring import plain, run_program

OSLO_FILES = ("/etc/keystone/keystone.conf", "/etc/glance/glance-api.conf", "/etc/placement/placement.conf",
              "/etc/nova/nova.conf", "/etc/nova/nova-compute.conf")
# Any text, control characters and odd code points included; the parser decides what is accepted.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
TRICKY = ["pa$$word", '"secret"', "'", '"', "${HOME}", "$(reboot)", "a;b#c", "x = y", "%41@:/?#[]", "back\\slash",
          "ünïcødé", "日本語のパスワード", "a'b\"c"]


def oslo_read(text: str) -> dict[tuple[str, str], str]:
    """Every option of an INI file as oslo.config reads it (quotes stripped, `$` substitutions made)."""
    found: list[tuple[str, str]] = []

    class Names(iniparser.BaseParser):
        section = "DEFAULT"

        def new_section(self, section):
            self.section = section

        def assignment(self, key, value):
            found.append((self.section, key))

    Names().parse(text.splitlines(keepends=True))
    conf = cfg.ConfigOpts()
    for section, option in found:
        conf.register_opt(cfg.StrOpt(option), group=None if section == "DEFAULT" else section)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
    try:
        conf(args=[], default_config_files=[f.name], use_env=False)
        return {(s, o): (conf[o] if s == "DEFAULT" else conf[s][o]) for s, o in found}
    finally:
        os.unlink(f.name)


@given(TEXT)
@example("")
@settings(max_examples=300)
def test_an_oslo_value_is_read_back_exactly_or_refused(value):
    if not value.isprintable():
        with pytest.raises(render.RenderError):
            render.oslo_value(value)
        return
    assert oslo_read(f"[DEFAULT]\nx = {render.oslo_value(value)}\n")[("DEFAULT", "x")] == value


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_oslo_values_are_read_back_exactly(value):
    assert oslo_read(f"[DEFAULT]\nx = {render.oslo_value(value)}\n")[("DEFAULT", "x")] == value


def accepted(raw: dict):
    try:
        return config.parse(raw)
    except ConfigError as e:
        assert "\n" not in str(e)
        return None


# ----------------------------------------------------------------------------------------- the whole program


def rendered(raw: dict) -> tuple[dict, list]:
    """The files the program writes ({(resource name, path): content}) and the commands it runs."""
    mocks, _ = run_program(raw)
    files = {(r.name, r.inputs["path"]): plain(r.inputs["content"]) for r in mocks.resources
             if r.typ.endswith("remote:File")}
    commands = [{k: plain(v) for k, v in r.inputs.items()} for r in mocks.resources if r.typ.endswith("remote:Command")]
    return files, commands


def sourced(text: str) -> dict[str, str]:
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(text)
    try:
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                              '. "$1" && printf "%s\\0%s\\0%s" "$OS_PASSWORD" "$OS_REGION_NAME" "$OS_AUTH_URL"',
                              "_", f.name], capture_output=True, check=True).stdout.decode()
    finally:
        os.unlink(f.name)
    return dict(zip(("password", "region", "auth_url"), out.split("\0")))


def read_on_stdin(command: str, stdin: str) -> str:
    """What a step's `IFS= read -r VAR` takes from its stdin."""
    var = command.split("IFS= read -r ", 1)[1].split(";")[0].split()[0]
    return subprocess.run(["sh", "-c", f'IFS= read -r {var} || true; printf %s "${var}"'], input=stdin.encode(),
                          capture_output=True, check=True).stdout.decode()


def as_text(value) -> str:
    """An override value as the service reads it: a string as written, a boolean as true/false, a number as its digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def check_everywhere(password: str, region: str, option_value) -> None:
    raw = copy.deepcopy(GOOD)
    raw["passwords"] = {name: password for name in PASSWORDS}
    raw["region"] = region
    raw["overrides"] = {"nova": {"DEFAULT": {"osd_test_option": option_value}}}
    if accepted(raw) is None:
        return  # rejected with one line, before anything is rendered
    files, commands = rendered(raw)
    checked = 0
    for (_, path), text in files.items():
        if path not in OSLO_FILES:
            continue
        for (section, option), got in oslo_read(text).items():
            if option == "password":
                assert got == password, (path, section)
                checked += 1
            elif option in ("connection", "transport_url"):
                assert unquote(urlsplit(got).password) == password, (path, section, option)
                checked += 1
            elif option == "region_name":
                assert got == region, (path, section)
            elif option == "osd_test_option":
                assert got == as_text(option_value), path
    assert checked >= 12  # every service's passwords and database URLs, Nova's on both hosts
    openrc = sourced(next(text for (_, path), text in files.items() if path == "/root/admin-openrc"))
    assert openrc["password"] == password and openrc["region"] == region
    for c in commands:
        shlex.split(c["create"])  # every command line parses as a shell would split it
        subprocess.run(["sh", "-n", "-c", c["create"]], check=True)
        if "IFS= read -r " in c["create"].split(";")[0]:
            assert read_on_stdin(c["create"], c["stdin"]).rstrip("\n") == password
        if "--bootstrap-region-id" in c["create"]:
            words = shlex.split(c["create"].split(";", 2)[-1])
            assert words[words.index("--bootstrap-region-id") + 1] == region


PASSWORD = st.one_of(st.sampled_from(TRICKY), TEXT.filter(bool))
REGION = st.one_of(st.just("RegionOne"), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True), TEXT)
OPTION_VALUE = st.one_of(TEXT, st.integers(), st.booleans(), st.sampled_from(TRICKY))


@given(PASSWORD, REGION, OPTION_VALUE)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_file_and_command_carries_a_value_exactly_or_the_config_is_rejected(password, region, option_value):
    check_everywhere(password, region, option_value)


@pytest.mark.parametrize("password", TRICKY)
def test_tricky_passwords_reach_every_reader_exactly(password):
    check_everywhere(password, "RegionOne", password)


@given(PASSWORD, REGION)
@settings(max_examples=200)
def test_clouds_yaml_carries_any_accepted_password_and_region(password, region):
    raw = dict(GOOD, passwords={"keystone_admin": password}, region=region)
    if accepted(raw) is None:
        return
    text = render.render("keystone", "clouds.yaml", "debian", password=password, region=region,
                         auth_url="http://10.0.0.10:5000/v3/")
    cloud = yaml.safe_load(text)["clouds"]["admin"]
    assert cloud["auth"]["password"] == password and cloud["region_name"] == region


@settings(max_examples=300, deadline=None)
@given(password=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=4, max_size=40)
       .filter(lambda p: p == p.strip() and p.isprintable()))
def test_a_masked_render_holds_no_form_of_any_secret(password):
    """Every file the program writes a secret into, rendered and masked: no written form of the secret is left."""
    url = f"mysql+pymysql://nova:{quote(password, safe='')}@controller/nova"
    texts = [
        render.render("placement", "placement.conf", "debian", database_url=url,
                      auth={"auth_url": "http://controller:5000/v3/", "public_auth_url": "http://10.0.0.10:5000/v3/",
                            "memcached_servers": "controller:11211", "username": "placement", "password": password}),
        render.render("keystone", "admin-openrc", "debian", password=password, auth_url="http://10.0.0.10:5000/v3/",
                      region="RegionOne"),
        render.render("keystone", "clouds.yaml", "debian", password=password, auth_url="http://10.0.0.10:5000/v3/",
                      region="RegionOne"),
    ]
    for text in texts:
        shown = render.masked(text, {"placement_user": password})
        assert "<secret placement_user>" in shown
        rest = shown.replace("<secret placement_user>", "\0")  # (a password may be part of the mark's own text)
        for form in render.written_forms(password):
            assert form not in rest
