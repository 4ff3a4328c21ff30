"""The OpenStack release a stack's cloud was deployed with, kept in its state: a later run whose config names
another one stops in `check`, before anything on a host (or a lab node) runs. Moving a cloud from one release to
another in place skips releases OpenStack only upgrades one at a time, through their own database migrations:
that is a new stack, not a changed key (README, "Releases")."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, Resource

from .base import Provider, is_unknown


class _ReleaseProvider(Provider):
    inputs = ("release", "os_release")

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        was, now = olds.get("release"), news.get("release")
        if was and not is_unknown(now) and now != was:
            return CheckResult(news, [CheckFailure("release", (
                f"openstack-deploy:release: this stack's cloud runs {was}; changing it to {now} in place is not "
                f"supported (OpenStack upgrades one release at a time): set it back to {was}, or deploy {now} "
                "as a new stack"))])
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=str(props["release"]), outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        pass


class DeployedRelease(Resource, module="cloud", name="Release"):
    def __init__(self, name: str, release: str, os_release: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(_ReleaseProvider(), name, {"release": release, "os_release": os_release}, opts)
