"""Malformed stack configs through the real program: each stack file is YAML as an operator writes it (so YAML's
own typing is part of the test), previewed by the real engine. Every one exits with exactly one error line that
names the key (and the host), and registers nothing but the Stack: no host is touched."""

import concurrent.futures
import json

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.conftest import cli

P = "openstack-deploy"
HOSTS = "[{name: controller, address: 10.66.0.10, roles: [controller]}, {name: compute1, address: 10.66.0.11, roles: [compute]}]"
BASE = {  # a good real-hosts stack; each case replaces or adds keys, values as YAML flow text
    f"{P}:managementCidr": "10.66.0.0/24",
    f"{P}:ssh": "{privateKeyFile: KEYS/good}",
    f"{P}:hosts": HOSTS,
}
LAB = {  # a good lab stack
    f"{P}:managementCidr": "10.66.0.0/24",
    f"{P}:lab": "{bridge: osdbad0}",
    f"{P}:hosts": HOSTS,
}


def hosts(controller: str = "controller", compute: str = "{name: compute1, address: 10.66.0.11, roles: [compute]}"):
    return f"[{{name: {controller}, address: 10.66.0.10, roles: [controller]}}, {compute}]"


def compute(**fields) -> str:
    item = {"name": "compute1", "address": "10.66.0.11", "roles": "[compute]"} | fields
    return hosts(compute="{" + ", ".join(f"{k}: {v}" for k, v in item.items()) + "}")


def nova(text: str) -> dict:
    return {f"{P}:overrides": f"{{nova: {text}}}"}


def password(value: str) -> dict:
    return {f"{P}:passwords": f"{{nova_db: {value}}}"}


def ssh(text: str) -> dict:
    return {f"{P}:ssh": text}


C1 = "hosts[1] (compute1)"
CASES = [  # (what, keys to set on BASE (or on LAB with lab=True), the error line's start)
    # INI overrides: nothing can add a line, a section or an option to a service's file
    ("a newline in an override value", nova('{DEFAULT: {debug: "true\\n[database]\\nconnection = sqlite://"}}'),
     "overrides.nova.DEFAULT.debug: contains a line break"),
    ("a carriage return in an override value", nova('{DEFAULT: {debug: "true\\rx"}}'),
     "overrides.nova.DEFAULT.debug: contains a line break"),
    ("a tab in an override value", nova('{DEFAULT: {host: "a\\tb"}}'), "overrides.nova.DEFAULT.host: contains a line break"),
    ("a newline in an option name", nova('{DEFAULT: {"debug\\n[database]": x}}'),
     "overrides.nova.DEFAULT.'debug\\n[database]': is not an option name"),
    ("a newline in a section name", nova('{"DEFAULT]\\n[database": {a: b}}'),
     "overrides.nova.'DEFAULT]\\n[database': is not an INI section name"),
    ("a bracket in a section name", nova('{"data]base": {a: b}}'), "overrides.nova.'data]base': is not an INI section"),
    ("an equals sign in an option name", nova('{DEFAULT: {"a=b": c}}'), "overrides.nova.DEFAULT.'a=b': is not an option"),
    ("a colon in an option name", nova('{DEFAULT: {"a:b": c}}'), "overrides.nova.DEFAULT.'a:b': is not an option"),
    ("a space in an option name", nova('{DEFAULT: {"my option": c}}'), "overrides.nova.DEFAULT.'my option': is not an"),
    ("a list as an override value", nova("{DEFAULT: {debug: [1, 2]}}"),
     "overrides.nova.DEFAULT.debug: must be a string, number or boolean, got a list"),
    ("an empty override value", nova("{DEFAULT: {debug: }}"),
     "overrides.nova.DEFAULT.debug: must be a string, number or boolean, got empty"),
    ("a mapping as an override value", nova("{DEFAULT: {debug: {a: b}}}"),
     "overrides.nova.DEFAULT.debug: must be a string, number or boolean, got a mapping"),
    ("an override of an unknown service", {f"{P}:overrides": "{swift: {DEFAULT: {debug: true}}}"},
     "overrides.swift: unknown service"),
    ("a host override with a newline", {f"{P}:hosts": compute(overrides='{nova: {DEFAULT: {debug: "a\\nb"}}}')},
     f"{C1}.overrides.nova.DEFAULT.debug: contains a line break"),
    # passwords: accepted everywhere they go, or rejected with the reason
    ("a newline in a password", password('"first\\nsecond"'), "passwords.nova_db: is not one line of text"),
    ("a tab in a password", password('"a\\tb"'), "passwords.nova_db: is not one line of text"),
    ("a NUL in a password", password('"a\\0b"'), "passwords.nova_db: is not one line of text"),
    ("a password with a leading space", password('" secret-pass"'), "passwords.nova_db: starts or ends with a space"),
    ("a password with a trailing space", password('"secret-pass "'), "passwords.nova_db: starts or ends with a space"),
    ("a password longer than bcrypt reads", password("x" * 73), "passwords.nova_db: is longer than 72 bytes"),
    ("a password of unquoted digits with a leading zero", password("0123"),
     "passwords.nova_db: must be a string, got a number"),
    ("a password of unquoted digits", password("12345678"), "passwords.nova_db: must be a string, got a number"),
    ("a password that YAML reads as a boolean", password("true"), "passwords.nova_db: must be a string, got a boolean"),
    ("a password that YAML reads as a number", password("1.10"), "passwords.nova_db: must be a string, got a number"),
    ("a password that is a mapping", password("{a: b}"), "passwords.nova_db: must be a string, got a mapping"),
    ("an empty password", password('""'), "passwords.nova_db: must not be empty"),
    ("an unknown password name", {f"{P}:passwords": "{nova_typo: x}"}, "passwords.nova_typo: unknown password name"),
    # host names: one label, checked whole, never an address or this host itself
    ("a host name with a trailing newline", {f"{P}:hosts": hosts(controller='"controller\\n"')},
     "hosts[0].name: 'controller\\n' is not a valid host name"),
    ("a host name of digits only", {f"{P}:hosts": hosts(controller='"1234"')},
     "hosts[0].name: '1234' reads as an IPv4 address"),
    ("a host name in hexadecimal", {f"{P}:hosts": hosts(controller='"0x1f"')}, "hosts[0].name: '0x1f' reads as an IPv4"),
    ("a host name YAML reads as hexadecimal", {f"{P}:hosts": hosts(controller="0x1f")},
     "hosts[0].name: must be a string, got a number"),
    ("a host name YAML reads as a number", {f"{P}:hosts": hosts(controller="1234")},
     "hosts[0].name: must be a string, got a number"),
    ("a host named localhost", {f"{P}:hosts": hosts(controller="localhost")},
     "hosts[0].name: 'localhost' names this host itself"),
    ("a host named ip6-localhost", {f"{P}:hosts": hosts(controller="ip6-localhost")},
     "hosts[0].name: 'ip6-localhost' names this host itself"),
    ("an upper-case host name", {f"{P}:hosts": hosts(controller="Controller")},
     "hosts[0].name: 'Controller' is not a valid host name"),
    ("a host name of 64 characters", {f"{P}:hosts": hosts(controller="c" * 64)}, "hosts[0].name: 'cccc"),
    ("a host name with a leading hyphen", {f"{P}:hosts": hosts(controller="-ctl")}, "hosts[0].name: '-ctl' is not"),
    ("a host name with a shell command", {f"{P}:hosts": hosts(controller='"ctl;reboot"')},
     "hosts[0].name: 'ctl;reboot' is not a valid host name"),
    ("a host name with a dot", {f"{P}:hosts": hosts(controller="ctl.example.org")},
     "hosts[0].name: 'ctl.example.org' is not a valid host name"),
    ("a host without a name", {f"{P}:hosts": hosts(controller='""').replace("name: \"\", ", "")},
     "hosts[0].name: is required"),
    # the region: one token, as Keystone stores it
    ("a region with a space", {f"{P}:region": "Region One"}, "region: 'Region One' is not a valid region id"),
    ("a region with a command substitution", {f"{P}:region": '"$(reboot)"'}, "region: '$(reboot)' is not a valid"),
    ("a region with a newline", {f"{P}:region": '"RegionOne\\nexport X=1"'}, "region: 'RegionOne\\nexport X=1' is not"),
    ("a region longer than Keystone's", {f"{P}:region": "R" * 256}, "region: 'RRRR"),
    # typed values exactly as written
    ("an SSH port YAML reads as a boolean", ssh("{privateKeyFile: KEYS/good, port: true}"),
     "ssh.port: a boolean is not a TCP port"),
    ("an SSH port written as a string", ssh('{privateKeyFile: KEYS/good, port: "22"}'), "ssh.port: '22' is not a TCP port"),
    ("an SSH port of 0", ssh("{privateKeyFile: KEYS/good, port: 0}"), "ssh.port: 0 is not a TCP port"),
    ("an SSH port with a fraction", ssh("{privateKeyFile: KEYS/good, port: 22.5}"), "ssh.port: 22.5 is not a TCP port"),
    ("a dial timeout YAML reads as a boolean", ssh("{privateKeyFile: KEYS/good, dialTimeout: true}"),
     "ssh.dialTimeout: a boolean is not a number of seconds"),
    ("a negative dial timeout", ssh("{privateKeyFile: KEYS/good, dialTimeout: -1}"),
     "ssh.dialTimeout: -1 is not a number of seconds"),
    ("an SSH user YAML reads as a boolean", ssh("{privateKeyFile: KEYS/good, user: true}"),
     "ssh.user: must be a string, got a boolean"),
    ("an SSH user other than root", ssh("{privateKeyFile: KEYS/good, user: debian}"),
     "ssh.user: 'debian': only root is supported"),
    # SSH keys: checked as keys, not by a word in them
    ("an encrypted private key", ssh("{privateKeyFile: KEYS/encrypted}"), "ssh.privateKeyFile: is encrypted"),
    ("a truncated private key", ssh("{privateKeyFile: KEYS/truncated}"),
     "ssh.privateKeyFile: is not an Ed25519, ECDSA or RSA private key"),
    ("a binary file as the private key", ssh("{privateKeyFile: KEYS/binary}"), "ssh.privateKeyFile: KEYS/binary is not a"),
    ("a public key as the private key", ssh("{privateKeyFile: KEYS/public}"), "ssh.privateKeyFile: is not an Ed25519"),
    ("a private key in the config that is not one", ssh('{privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----"}'),
     "ssh.privateKey: is not an Ed25519, ECDSA or RSA private key"),
    ("both a key and a key file", ssh('{privateKeyFile: KEYS/good, privateKey: "x"}'),
     "ssh: set privateKey or privateKeyFile, not both"),
    ("a key file that does not exist", ssh("{privateKeyFile: KEYS/missing}"), "ssh.privateKeyFile: cannot read"),
    # addresses that cannot work
    ("a host on the subnet's network address", {f"{P}:hosts": compute(address="10.66.0.0")},
     f"{C1}.address: 10.66.0.0 is the network address"),
    ("a host on the subnet's broadcast address", {f"{P}:hosts": compute(address="10.66.0.255")},
     f"{C1}.address: 10.66.0.255 is the broadcast address"),
    ("a host address YAML reads as a number", {f"{P}:hosts": compute(address="10")},
     f"{C1}.address: must be a string, got a number"),
    ("a host address outside the subnet", {f"{P}:hosts": compute(address="10.99.0.11")},
     f"{C1}.address: 10.99.0.11 is outside managementCidr"),
    ("two hosts on one address", {f"{P}:hosts": compute(address="10.66.0.10")}, f"{C1}.address: duplicate address"),
    ("a management subnet of every address", {f"{P}:managementCidr": "0.0.0.0/0"}, "managementCidr: 0.0.0.0/0: a management"),
    ("a loopback management subnet", {f"{P}:managementCidr": "127.0.0.0/8"}, "managementCidr: 127.0.0.0/8 is not a subnet"),
    ("a multicast management subnet", {f"{P}:managementCidr": "224.0.0.0/24"}, "managementCidr: 224.0.0.0/24 is not"),
    ("a management subnet with host bits", {f"{P}:managementCidr": "10.66.0.1/24"},
     "managementCidr: '10.66.0.1/24' is not a network"),
    ("a VIP (not implemented)", {f"{P}:vip": "10.66.0.1"}, "vip: not supported yet"),
    ("two controllers", {f"{P}:hosts": compute(roles="[controller, compute]")}, "hosts: 2 controllers"),
    ("a role YAML reads as a number", {f"{P}:hosts": compute(roles="[compute, 1]")}, f"{C1}.roles: unknown role 1"),
    ("hosts as a mapping", {f"{P}:hosts": "{controller: 10.66.0.10}"}, "hosts: must be a non-empty list of hosts"),
    ("a host key that is not one", {f"{P}:hosts": compute(hostKey='"ssh-ed25519 AAAA\\nssh-rsa BBBB"')},
     f"{C1}.hostKey: is not an SSH public key line"),
    # keys nothing reads
    ("a misspelt namespace", {"openstak-deploy:region": "RegionTwo"},
     "openstak-deploy:region: unknown namespace 'openstak-deploy'"),
    ("a provider's namespace", {"openstack:authUrl": "http://10.66.0.10:5000/v3"},
     "openstack:authUrl: unknown namespace 'openstack'"),
    ("an unknown top-level key", {f"{P}:colour": "blue"}, "colour: unknown key"),
    ("an unknown key of a host", {f"{P}:hosts": compute(role="compute")}, "hosts[1].role: unknown key"),
    ("an unknown release", {f"{P}:release": "antelope"}, "release: 'antelope' is not shipped by platform debian"),
    ("a release YAML reads as a number", {f"{P}:release": "2023.1"}, "release: '2023.1' is not shipped"),
    ("a deadline of an unknown step kind", {f"{P}:deadlines": "{service: 60}"},
     "deadlines.service: unknown key (allowed: command, packages, file)"),
    ("a deadline YAML reads as a boolean", {f"{P}:deadlines": "{command: true}"},
     "deadlines.command: a boolean is not a number of seconds"),
    ("an unknown virt type", {f"{P}:virtType": "xen"}, "virtType: 'xen' is not one of auto, kvm, qemu"),
]
LAB_CASES = [  # on LAB
    ("an SSH user in a lab", ssh("{user: root}"), "ssh.user: unknown key (allowed: dialTimeout)"),
    ("an SSH port in a lab", ssh("{port: 2222}"), "ssh.port: unknown key (allowed: dialTimeout)"),
    ("an SSH key in a lab", ssh("{privateKeyFile: KEYS/good}"), "ssh.privateKeyFile: unknown key"),
    ("a lab suite of another release", {f"{P}:lab": "{bridge: osdbad0, suite: bookworm}"},
     "lab.suite: 'bookworm' does not ship release 2025.1"),
    ("a lab bridge name too long", {f"{P}:lab": "{bridge: br-lab-name-too-long}"}, "lab.bridge: 'br-lab-name-too-long'"),
    ("a lab bridge YAML reads as a boolean", {f"{P}:lab": "{bridge: true}"}, "lab.bridge: must be a string, got a boolean"),
    ("a lab's disposable written as a string", {f"{P}:lab": '{bridge: osdbad0, disposable: "false"}'},
     "lab.disposable: 'false' is not true or false"),
    ("a lab subnet of one address", {f"{P}:managementCidr": "10.66.0.7/32"}, "managementCidr: 10.66.0.7/32: a management"),
    ("a lab host on the bridge's address", {f"{P}:hosts": compute(address="10.66.0.1")},
     f"{C1}.address: 10.66.0.1 is reserved for the lab host's bridge"),
    ("a VIP on the lab bridge's address", {f"{P}:vip": "10.66.0.1"}, "vip: not supported yet"),
    ("a lab machine name longer than nspawn allows", {f"{P}:hosts": hosts(controller="c" * 60)},
     f"hosts[0] ({'c' * 60}).name: the lab's machine name"),
]
ALL = [(what, False, keys, message) for what, keys, message in CASES] + \
      [(what, True, keys, message) for what, keys, message in LAB_CASES]


def key_files(folder) -> None:
    folder.mkdir()
    key = ed25519.Ed25519PrivateKey.generate()
    good = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    (folder / "good").write_bytes(good)
    (folder / "encrypted").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.BestAvailableEncryption(b"pw")))
    (folder / "truncated").write_bytes(good[: len(good) // 2])
    (folder / "binary").write_bytes(bytes(range(256)) * 4)
    (folder / "public").write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                  serialization.PublicFormat.OpenSSH))


def stack_file(project, name: str, values: dict, folder):
    """A new stack whose file holds `values` (YAML flow text; KEYS: the key files' folder); the file's path."""
    work, _ = project
    cli(project, "stack", "init", name)
    path = work / "stacks" / f"Pulumi.{name}.yaml"
    salt = yaml.safe_load(path.read_text()).get("encryptionsalt") if path.exists() else None
    text = "".join(f"  {k}: {v.replace('KEYS', str(folder))}\n" for k, v in values.items())
    path.write_text("config:\n" + text + (f"encryptionsalt: {salt}\n" if salt else ""))
    return path


def preview(project, index: int, lab: bool, keys: dict, folder) -> tuple[list, list]:
    """(the steps the preview registered, its error lines) for one stack file."""
    name = f"bad{index}"
    stack_file(project, name, {**(LAB if lab else BASE), **keys}, folder)
    result = cli(project, "preview", "--stack", name, "--json", check=False)
    assert result.returncode != 0, result.stdout[-2000:]
    if not result.stdout.strip():  # the CLI itself refused the stack file, before any program ran
        return [], [line for line in result.stderr.splitlines() if line.strip()]
    events = json.loads(result.stdout)
    steps = [s["urn"] for s in events.get("steps", [])]
    errors = [d["message"].strip() for d in events.get("diagnostics", []) if d.get("severity") == "error"]
    return steps, errors


def test_there_are_at_least_sixty_cases():
    assert len(ALL) >= 60 and len({what for what, *_ in ALL}) == len(ALL)


def test_each_malformed_config_fails_with_one_line_naming_the_key_and_registers_nothing(project):
    work, _ = project
    folder = work.parent / "keys"
    key_files(folder)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda case: preview(project, case[0], *case[1][1:3], folder), enumerate(ALL)))
    wrong = []
    for (what, _, _, message), (steps, errors) in zip(ALL, results):
        expected = f"error: {P}:{message}" if not message.startswith(("openstak-", "openstack:")) else f"error: {message}"
        expected = expected.replace("KEYS", str(folder))
        if not all("pulumi:pulumi:Stack" in u for u in steps):
            wrong.append(f"{what}: registered {steps}")
        elif len(errors) != 1 or "\n" in errors[0] or not errors[0].startswith(expected):
            wrong.append(f"{what}: {errors}")
    assert wrong == [], "\n".join(wrong)


def test_a_changed_release_stops_the_run_with_one_line_before_any_host_is_touched(project):
    work, _ = project
    folder = work.parent / "keys"
    key_files(folder)
    path = stack_file(project, "moved", {f"{P}:release": "zed", **BASE}, folder)
    targets = [arg for glob in ("**::cloud", "**cloud-passwords**", "**::cloud-release") for arg in ("--target", glob)]
    cli(project, "up", "--stack", "moved", "--yes", "--skip-preview", *targets)  # "deployed": its hosts need not exist
    path.write_text(path.read_text().replace(f"{P}:release: zed", f'{P}:release: "2025.1"'))
    for command in (["preview"], ["up", "--yes", "--skip-preview"]):
        result = cli(project, *command, "--stack", "moved", "--json", check=False)
        assert result.returncode != 0
        events = json.loads(result.stdout) if command == ["preview"] else {"diagnostics": [
            json.loads(line)["diagnosticEvent"] for line in result.stdout.splitlines() if '"diagnosticEvent"' in line]}
        errors = [d["message"].strip() for d in events.get("diagnostics", []) if d.get("severity") == "error"]
        assert len(errors) == 1 and "\n" not in errors[0] and (  # (the engine's words around the provider's)
            f"{P}:release: this stack's cloud runs zed; changing it to 2025.1 in place is not supported" in errors[0]), errors
    state = json.loads(cli(project, "stack", "export", "--stack", "moved").stdout)["deployment"]["resources"]
    assert not [r["urn"] for r in state if "/remote:" in r["type"] or "/lab:" in r["type"]]  # no host was touched
