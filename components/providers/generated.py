"""Values generated once and then kept in the stack's state as secrets: passwords and SSH key pairs.

Like the `random` provider's resources, they have no external side: create makes the value, every later
run reads it back from state, and a replace (or a destroy and up) makes a new one.
"""

from __future__ import annotations

import secrets
import string
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, Resource

from .base import Provider

# Letters and digits only: safe in URLs (transport_url, database connections), INI files and shells.
_ALPHABET = string.ascii_letters + string.digits


class _PasswordProvider(Provider):
    inputs = replace_on = ("length",)
    delete_first = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        length = int(props["length"])
        value = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        return CreateResult(id_=secrets.token_hex(8), outs={"length": length, "value": value})



class GeneratedPassword(Resource, module="secrets", name="Password"):
    value: pulumi.Output[str]

    def __init__(self, name: str, length: int = 32, opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(_PasswordProvider(), name, {"length": length, "value": None}, opts)


class _SshKeyProvider(Provider):
    inputs = replace_on = ("comment",)
    delete_first = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        outs = {"comment": props["comment"], "private_key": private, "public_key": f"{public.decode()} {props['comment']}"}
        return CreateResult(id_=secrets.token_hex(8), outs=outs)



class GeneratedSshKey(Resource, module="secrets", name="SshKey"):
    """An Ed25519 key pair; the private key is a secret output."""

    private_key: pulumi.Output[str]
    public_key: pulumi.Output[str]

    def __init__(self, name: str, comment: str, opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"]))
        super().__init__(_SshKeyProvider(), name, {"comment": comment, "private_key": None, "public_key": None}, opts)
