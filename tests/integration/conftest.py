"""Integration fixtures: the real Pulumi engine, with the environment scripts/env.sh gives every command."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
from pulumi import automation as auto

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_PASSPHRASE = "openstack-lab"  # the lab stack's documented default (README.md); never for real stacks


def script_module(name: str):
    """A Python script of scripts/ (upgrade.py, preview_report.py) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def project_env() -> dict:
    """The environment that scripts/env.sh sets up (toolchain and venv on PATH, no update checks...)."""
    out = subprocess.run(
        ["bash", "-c", f". {ROOT}/scripts/env.sh && env -0"], check=True, capture_output=True
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@pytest.fixture(scope="session")
def env():
    e = project_env()
    if shutil.which("pulumi", path=e["PATH"]) is None:
        pytest.fail("pulumi is not bootstrapped: run scripts/bootstrap (make test does)")
    # The Automation API finds the CLI on this process's PATH, as the wrapper script does.
    os.environ["PATH"] = e["PATH"]
    return e


PROGRAM = ("Pulumi.yaml", "__main__.py", "components", "templates")  # the program, without its stack configs


def remove_program(work, names=PROGRAM) -> None:
    for name in names:
        target = work / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def copy_program(work, names=PROGRAM) -> None:
    """This checkout's program files into `work`, in place of any there."""
    remove_program(work, names)
    for name in names:
        target = work / name
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(src):
            shutil.copy(src, target)


def make_project(tmp_path, env):
    """A copy of the program in a temporary directory with its own file backend, so a test's stacks and
    stack config files never touch the repository's."""
    work = tmp_path / "project"
    work.mkdir()
    copy_program(work, names=PROGRAM + ("stacks",))
    os.symlink(os.path.join(ROOT, "venv"), work / "venv")
    (tmp_path / "state").mkdir()
    test_env = dict(env, PULUMI_BACKEND_URL=f"file://{tmp_path}/state", PULUMI_CONFIG_PASSPHRASE=LAB_PASSPHRASE)
    return work, test_env


@pytest.fixture
def project(tmp_path, env):
    return make_project(tmp_path, env)


def stack(project, name: str) -> auto.Stack:
    work, test_env = project
    return auto.create_or_select_stack(
        stack_name=name,
        work_dir=str(work),
        opts=auto.LocalWorkspaceOptions(env_vars=test_env),
    )


def cli(project, *args, check=True) -> subprocess.CompletedProcess:
    work, test_env = project
    return subprocess.run(["pulumi", *args], cwd=work, env=test_env, capture_output=True, text=True, check=check)
