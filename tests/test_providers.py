"""The dynamic providers without hosts: what every one does with values a preview does not know, which names a
stack's state holds, and how each kind of step is changed or replaced (table-driven, with the host faked)."""

import base64
import importlib
import inspect
import pkgutil

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown

import components.providers as providers
from components.providers import base, mariadb, release, remote

CONN = {"host": "10.0.0.10", "port": 22, "user": "root", "private_key": "PEM", "dial_timeout": 120,
        "name": "controller", "host_key": "ssh-ed25519 AAAAkey"}


def all_providers():
    """Every provider a resource uses: the leaves of base.Provider's tree."""
    found = []
    for info in pkgutil.iter_modules(providers.__path__):
        module = importlib.import_module(f"components.providers.{info.name}")
        found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, base.Provider) and cls.__module__ == module.__name__]
    return [cls for cls in found if not any(other is not cls and issubclass(other, cls) for other in found)]


def test_every_provider_is_pickled_by_a_stable_name():
    found = sorted(f"{cls.__module__}.{cls.__name__}" for cls in all_providers())
    assert found == sorted(providers.STABLE)
    for cls in all_providers():
        pickled = base64.b64decode(serialize_provider(cls()))
        assert len(pickled) < 200 and cls.__name__.encode() in pickled, cls  # by reference, not by value


# A plausible recorded state (olds) and program inputs (news) for each provider.
SAMPLES = {
    "_AccessProvider": ({"connection": CONN, "host_key": CONN["host_key"], "answer": "answers"}, {"connection": CONN}),
    "_CommandProvider": (
        {"connection": CONN, "create": "make", "update": None, "delete": "unmake", "stdin": "s", "triggers": [1],
         "check": "test -e x", "keep_stdout": False, "timeout": 60, "stdout": None},
        {"connection": CONN, "create": "make", "delete": "unmake", "stdin": "s", "triggers": [1], "check": "test -e x",
         "keep_stdout": False, "timeout": 60}),
    "_FileProvider": (
        {"connection": CONN, "path": "/etc/x", "content": "a\n", "mode": "0644", "owner": "root", "group": "root",
         "version": 3},
        {"connection": CONN, "path": "/etc/x", "content": "a\n", "mode": "0644", "owner": "root", "group": "root"}),
    "_PackagesProvider": (
        {"connection": CONN, "packages": ["a", "b"], "install": "i {packages}", "remove": "r {packages}",
         "query": "q {packages}", "installed": ["a", "b"]},
        {"connection": CONN, "packages": ["a", "b"], "install": "i {packages}", "remove": "r {packages}",
         "query": "q {packages}"}),
    "_DatabaseProvider": (
        dict({"connection": CONN, "socket": "/s", "databases": ["d"], "user": "u", "password": "p",
              "hosts": ["localhost", "%"]}, **mariadb.wanted({"databases": ["d"], "user": "u", "hosts": ["localhost", "%"]})),
        {"connection": CONN, "socket": "/s", "databases": ["d"], "user": "u", "password": "p", "hosts": ["localhost", "%"]}),
    "_PasswordProvider": ({"length": 32, "value": "x" * 32}, {"length": 32}),
    "_GuestImageProvider": ({"cache_root": "/c", "sources": "k", "path": "/c/images/guest-k.raw", "sha256": "ab",
                             "size": 16, "min_ram_mib": 96}, {"cache_root": "/c", "sources": "k"}),
    "_ReleaseProvider": ({"release": "zed", "os_release": "bookworm"}, {"release": "zed", "os_release": "bookworm"}),
    "_SshKeyProvider": ({"comment": "c", "private_key": "PEM", "public_key": "ssh-ed25519 A c"}, {"comment": "c"}),
    "BridgeProvider": ({"name": "br0", "address_cidr": "10.0.0.1/24"}, {"name": "br0", "address_cidr": "10.0.0.1/24"}),
    "HostPackagesProvider": ({"packages": ["x"]}, {"packages": ["x"]}),
    "PackageCacheProvider": ({"address": "a", "port": 1, "mirrors": ["m"], "cache_dir": "c", "state_dir": "s"},
                             {"address": "a", "port": 1, "mirrors": ["m"], "cache_dir": "c", "state_dir": "s"}),
    "BaseImageProvider": ({"suite": "s", "mirror": "m", "mirror_upstream": "u", "include": ["x"], "images_dir": "d",
                           "rootfs": "r"}, {"suite": "s", "mirror": "m", "mirror_upstream": "u", "include": ["x"],
                                            "images_dir": "d"}),
    "NodeNetworkProvider": ({"netns": "n", "veth": "v", "bridge": "b", "address_cidr": "c", "gateway": "g"},
                            {"netns": "n", "veth": "v", "bridge": "b", "address_cidr": "c", "gateway": "g"}),
    "NodeRootfsProvider": ({"node_dir": "d", "base_rootfs": "r", "hostname": "h", "authorized_key": "k",
                            "apt_sources": "s", "host_key": "ssh-ed25519 A"},
                           {"node_dir": "d", "base_rootfs": "r", "hostname": "h", "authorized_key": "k",
                            "apt_sources": "s"}),
    "NodeProvider": ({"machine": "m", "hostname": "h", "root": "r", "netns": "n", "log": "l", "connection": CONN,
                      "stop_timeout": 30, "pid": 7},
                     {"machine": "m", "hostname": "h", "root": "r", "netns": "n", "log": "l", "connection": CONN,
                      "stop_timeout": 30}),
}


@pytest.fixture
def no_host(monkeypatch):
    """Any attempt to reach a host or run a tool fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("a host or tool was touched")
    monkeypatch.setattr("components.providers.ssh.execute", refuse)
    monkeypatch.setattr("components.providers.ssh.connect", refuse)
    monkeypatch.setattr("components.providers.ssh.host_key", refuse)
    monkeypatch.setattr("components.providers.lab.sh", refuse)


def test_every_sample_is_unchanged_against_itself(no_host):
    assert sorted(SAMPLES) == sorted(cls.__name__ for cls in all_providers())
    for cls in all_providers():
        olds, news = SAMPLES[cls.__name__]
        assert not cls().diff("id", olds, news).changes, cls.__name__


@pytest.mark.parametrize("cls", list(all_providers()), ids=lambda c: c.__name__)
def test_an_unknown_input_is_a_change_and_is_never_looked_at(cls, no_host):
    olds, news = SAMPLES[cls.__name__]
    provider = cls()
    for key in news:
        for unknown in (Unknown(), {"host": Unknown()} if key == "connection" else [Unknown()]):
            partial = dict(news, **{key: unknown})
            assert provider.check(olds, partial).inputs == partial
            diff = provider.diff("id", olds, partial)
            assert diff.changes, (cls.__name__, key)
            assert key != "connection" or not diff.replaces, "an unknown connection is the same host, not ready yet"
            read = provider.read("id", dict(olds, **{key: unknown}))  # a state with a value nobody knew: kept
            assert read.id == "id", (cls.__name__, key)


@pytest.mark.parametrize("cls", [c for c in all_providers() if c.outputs], ids=lambda c: c.__name__)
def test_a_state_without_an_output_this_release_records_is_an_update(cls, no_host):
    olds, news = SAMPLES[cls.__name__]
    for key in cls.outputs:
        assert olds.get(key) is not None, (cls.__name__, key)  # the sample records it
        diff = cls().diff("id", {k: v for k, v in olds.items() if k != key}, news)
        assert diff.changes and not diff.replaces, (cls.__name__, key)


def test_a_file_recorded_without_a_write_count_records_one_without_writing(monkeypatch):
    monkeypatch.setattr(remote, "run_on", lambda *a, **k: pytest.fail("written"))
    olds, news = SAMPLES["_FileProvider"]
    assert remote._FileProvider().update("id", dict(olds, version=None), news).outs["version"] == 1


def command(**changes):
    olds, news = SAMPLES["_CommandProvider"]
    return remote._CommandProvider(), olds, dict(news, **changes)


@pytest.mark.parametrize("change, replaces, runs", [
    ({"create": "make v2"}, ["create"], None),  # no update script: the old undo runs first, then the new step
    ({"create": "make v2", "update": "make v2"}, [], "make v2"),  # in place
    ({"triggers": [2], "update": "make"}, [], "make"),  # a file it reads was written: runs again in place
    ({"stdin": "s2"}, ["stdin"], None),
    ({"delete": "unmake v2"}, [], False),  # a new undo or check is recorded; nothing runs
    ({"check": "test -e y"}, [], False),
    ({"connection": dict(CONN, host="10.0.0.11")}, ["connection"], None),  # another host: delete-first
    ({"connection": dict(CONN, host_key="ssh-ed25519 AAAAnew")}, [], False),  # a re-pinned key: state only
])
def test_how_a_command_changes(change, replaces, runs, monkeypatch):
    ran = []
    monkeypatch.setattr(remote, "run_on", lambda conn, script, *a, **k: ran.append(script) or remote.ssh.Result(0, "", ""))
    provider, olds, news = command(**change)
    diff = provider.diff("id", olds, news)
    assert diff.changes and sorted(diff.replaces) == replaces and diff.delete_before_replace
    if runs is not None:
        provider.update("id", olds, news)
        assert ran == ([runs] if runs else [])


def test_a_connection_without_a_pin_keeps_the_recorded_one():
    provider, olds, news = command(connection={k: v for k, v in CONN.items() if k != "host_key"})
    assert not provider.diff("id", olds, news).changes


def test_a_file_counts_its_writes_and_a_missing_one_is_written_again(monkeypatch):
    monkeypatch.setattr(remote, "run_on", lambda *a, **k: remote.ssh.Result(0, "", ""))
    files = remote._FileProvider()
    olds, news = SAMPLES["_FileProvider"]
    assert files.update("id", olds, dict(news, content="b\n")).outs["version"] == 4
    assert files.update("id", olds, dict(news, connection=dict(CONN, name="c2"))).outs["version"] == 3  # no write
    monkeypatch.setattr(remote, "read_on", lambda *a, **k: remote.ssh.Result(3, "", ""))
    gone = files.read("id", olds)
    assert gone.id == "id" and gone.outs["content"] is None and files.diff("id", gone.outs, news).changes


def test_a_host_that_does_not_answer_keeps_its_recorded_state(monkeypatch):
    def down(*_a, **_k):
        raise remote.ssh.Unreachable("controller (root@10.0.0.10:22): cannot connect after 3 attempts in 10s: timed out")
    monkeypatch.setattr(remote.ssh, "execute", down)
    monkeypatch.setattr(remote.ssh, "host_key", down)
    monkeypatch.setattr(remote, "_TROUBLE", {})
    olds, _ = SAMPLES["_FileProvider"]
    assert remote._FileProvider().read("id", olds).outs == olds
    access_olds, access_news = SAMPLES["_AccessProvider"]
    read = remote._AccessProvider().read("id", access_olds)
    assert read.outs["answer"].startswith("no answer in 10s (cannot connect after 3 attempts in 10s: timed out)")
    assert remote._AccessProvider().diff("id", read.outs, access_news).changes  # the preview names the host


def test_a_package_removed_by_hand_is_drift_put_back_in_place(monkeypatch):
    ran = []
    monkeypatch.setattr(remote, "run_on", lambda conn, script, *a, **k: ran.append(script) or remote.ssh.Result(0, "", ""))
    packages = remote._PackagesProvider()
    olds, news = SAMPLES["_PackagesProvider"]
    monkeypatch.setattr(remote, "read_on", lambda *a, **k: remote.ssh.Result(0, "a installed\nb config-files\n", ""))
    drift = packages.read("id", olds).outs
    assert drift["installed"] == ["a"]
    diff = packages.diff("id", drift, news)
    assert diff.changes and not diff.replaces
    packages.update("id", drift, news)
    assert ran == ["i a b"]
    ran.clear()
    packages.update("id", olds, dict(news, packages=["a"]))  # b dropped from the set: removed, in place
    assert ran == ["r b", "i a"]


def test_a_changed_release_stops_at_check_naming_the_key():
    provider = release._ReleaseProvider()
    deployed = {"release": "zed", "os_release": "bookworm"}
    assert provider.check({}, deployed).failures == []  # a new stack
    assert provider.check(deployed, deployed).failures == []
    [failure] = provider.check(deployed, {"release": "2025.1", "os_release": "trixie"}).failures
    assert failure.property == "release" and "\n" not in failure.reason
    assert failure.reason.startswith("openstack-deploy:release: this stack's cloud runs zed; changing it to 2025.1 in "
                                     "place is not supported")


def test_the_dynamic_provider_plugin_starts_the_sdks_server_with_more_threads(tmp_path):
    """toolchain/pulumi-resource-pulumi-python, as the engine starts it (in the project's directory): it answers
    with the port of the SDK's provider server, its pool widened (components/providers/server.py)."""
    import os
    import subprocess
    from components.providers import server
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PATH=f"{root}/venv/bin:{os.environ['PATH']}")
    env.pop("PULUMI_RUNTIME_VIRTUALENV", None)
    plugin = subprocess.Popen([f"{root}/toolchain/pulumi-resource-pulumi-python"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert plugin.stdout.readline().strip().isdigit()
        assert open(f"/proc/{plugin.pid}/cmdline").read().split("\0")[-2:] == ["components.providers.server", ""]
    finally:
        plugin.kill()
        plugin.wait()
    assert server.WORKERS > 4
