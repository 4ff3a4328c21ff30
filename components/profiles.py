"""Platform profiles: what the components call a package or a service, mapped to one distribution's names.

Components speak in logical names ("keystone", "web_server"); a profile turns them into the
distribution's packages, units and paths. A second platform (the seeds' RDO/CentOS) is one more
Profile here, not a change to any component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Profile:
    name: str
    # OpenStack releases this platform's repositories ship, mapped to the OS release that ships them.
    releases: Mapping[str, str]
    package_manager: str
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=dict)

    def package_set(self, *logical: str) -> tuple[str, ...]:
        return tuple(p for name in logical for p in self.packages[name])

    def service(self, logical: str) -> str:
        return self.services[logical]


DEBIAN = Profile(
    name="debian",
    # Debian 12 (bookworm) ships OpenStack Zed in its main archive.
    releases={"zed": "bookworm"},
    package_manager="apt",
)

PROFILES: Mapping[str, Profile] = {p.name: p for p in (DEBIAN,)}
