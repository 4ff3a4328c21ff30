"""Every service password in one place: the stack's own secret when it sets one, else generated once."""

from __future__ import annotations

from typing import Mapping, Optional

import pulumi

from .config import PASSWORDS, Secret
from .providers.generated import GeneratedPassword


class Passwords(pulumi.ComponentResource):
    def __init__(self, name: str, given: Mapping[str, Secret], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openstack-deploy:infra:Passwords", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._values: dict[str, pulumi.Output[str]] = {
            pw: given[pw].output() if pw in given else pulumi.Output.secret(GeneratedPassword(f"{name}-{pw}", opts=child).value)
            for pw in PASSWORDS
        }
        self.register_outputs({})

    def __getitem__(self, name: str) -> pulumi.Output[str]:
        return self._values[name]
