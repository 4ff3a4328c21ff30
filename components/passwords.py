"""Every service password in one place: the stack's own secret when it sets one, else generated once."""

from __future__ import annotations

from typing import Mapping, Optional

import pulumi

from . import render
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

    def masked(self, text: pulumi.Input[str]) -> pulumi.Output[str]:
        """`text` (a file holding passwords) with each of them replaced by `<secret NAME>`: not secret, so a preview
        can show a diff of it (scripts/preview-report). Masked by value, by the program that knows every value."""
        names = list(self._values)
        return pulumi.Output.unsecret(pulumi.Output.all(text, *(self._values[n] for n in names)).apply(
            lambda v: render.masked(v[0], dict(zip(names, v[1:])))))
