"""Debian packages on the machine this program runs on (the lab's tools, the guest image's build tools). Two steps
of one run may install at once: apt waits for the other's lock instead of failing on it."""

from __future__ import annotations

import os
import subprocess
from typing import Iterable

_APT = ("apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=600")


class InstallError(RuntimeError):
    pass


def missing(packages: Iterable[str]) -> list[str]:
    packages = list(packages)
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def apt_env() -> dict[str, str]:
    """apt's environment here: no questions asked, messages in C (they are read)."""
    return dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")


def _apt(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([*_APT, *argv], capture_output=True, text=True, env=apt_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InstallError(f"apt-get {argv[0]}: no answer after {timeout:.0f} s") from None


def install(packages: Iterable[str], timeout: float = 1800) -> list[str]:
    """Installs those of `packages` that are missing (without recommends); returns them. The package lists are
    fetched again only when apt cannot find a package in the ones it has."""
    wanted = missing(packages)
    if not wanted:
        return []
    argv = ("install", "--no-install-recommends", *wanted)
    if _apt(*argv, timeout=timeout).returncode != 0:
        _apt("update", timeout=900)
        result = _apt(*argv, timeout=timeout)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no message)"]
            raise InstallError(f"apt-get install {' '.join(wanted)}: exit {result.returncode}: {lines[-1]}")
    return wanted
