"""The remote building blocks against a real lab node: files and commands, their facts, drift and undo, and a
step stopped at its deadline."""

import time

from components.providers import remote
from tests.integration.labstack import LAB, NODES, lab, private_key  # noqa: F401  (lab is a fixture)


def test_remote_file_and_command_read_the_host_and_undo(lab):  # noqa: F811
    lab.up(target=LAB)  # bare nodes are enough
    conn = {"host": NODES["controller"], "private_key": private_key(lab)}

    files = remote._FileProvider()
    want = {"connection": conn, "path": "/etc/osd-test/a.conf", "content": "[x]\ny = 1\n",
            "mode": "0640", "owner": "root", "group": "root"}
    made = files.create(want)
    assert made.outs["version"] == 1
    assert not files.diff(made.id, files.read(made.id, made.outs).outs, want).changes
    remote.run_on(conn, "echo edited-by-hand >> /etc/osd-test/a.conf; chmod 0644 /etc/osd-test/a.conf", None, "edit")
    drift = files.read(made.id, made.outs).outs
    assert drift["mode"] == "0644" and drift["content"].endswith("edited-by-hand\n")  # what the host has
    assert files.diff(made.id, drift, want).changes  # a hand edit is drift
    assert files.update(made.id, drift, want).outs["version"] == 2  # and is repaired, counted as a write
    assert not files.diff(made.id, files.read(made.id, made.outs).outs, want).changes
    files.delete(made.id, want)
    assert files.read(made.id, made.outs).outs["content"] is None  # gone: the next up writes it again

    commands = remote._CommandProvider()
    step = {"connection": conn, "create": "mkdir -p /srv/x && cat > /srv/x/secret", "delete": "rm -rf /srv/x",
            "check": "test -s /srv/x/secret", "stdin": "s3cret", "triggers": [], "keep_stdout": False, "timeout": 60}
    done = commands.create(step)
    assert done.outs["stdout"] is None  # nothing of the command's output is kept unless asked
    assert commands.read(done.id, done.outs).id == done.id
    remote.run_on(conn, "rm -rf /srv/x", None, "undo by hand")
    assert commands.read(done.id, done.outs).id is None  # the fact is gone: up runs the step again
    commands.create(step)
    commands.delete(done.id, step)
    assert commands.read(done.id, done.outs).id is None

    try:
        remote.run_on(conn, "echo boom >&2; exit 4", None, "a failing step")
    except remote.RemoteError as e:
        assert str(e) == f"root@{NODES['controller']}:22: a failing step failed (exit 4): boom"
    else:
        raise AssertionError("a failing step did not raise")


def test_a_step_that_hangs_is_stopped_at_its_deadline_with_what_it_said(lab):  # noqa: F811
    lab.up(target=LAB)
    conn = {"host": NODES["controller"], "private_key": private_key(lab), "name": "controller",
            "deadlines": {"command": 5}}
    started = time.monotonic()
    try:
        remote.run_on(conn, "echo waiting for a password; sleep 600 & sleep 601", "pw", "a hanging step")
    except remote.RemoteError as e:
        message = str(e)
    else:
        raise AssertionError("a hanging step returned")
    assert time.monotonic() - started < 30
    assert message.startswith(f"controller (root@{NODES['controller']}:22): a hanging step did not finish within its "
                              "deadline of 5s and was stopped there (command steps: `deadlines.command`")
    assert message.endswith(": waiting for a password")
    left = remote.run_on(dict(conn, deadlines={}), "pgrep -f 'sleep 60[01]' || true", None, "look").stdout
    assert left.strip() == ""  # the step and what it started are gone from the host
