"""The guest image of the lab's first servers, built on this machine from Debian packages (components/guest_image.py),
as a resource: `create` builds it (or finds it in the cache), `read` checks the file is still there with the
same sha256, so a purged cache shows on refresh and the next `up` builds it again."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource

from .. import guest_image
from .base import Provider


def _sha256(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


class _GuestImageProvider(Provider):
    # `sources`: the digest of the builder and the guest's files; a change builds a new image (and uploads it).
    # (New package versions are picked up by a build that runs anyway: a new stack, or the cache purged.)
    inputs = replace_on = ("cache_root", "sources")
    outputs = ("path", "sha256", "size", "min_ram_mib")
    delete_first = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        image = guest_image.build(props["cache_root"], progress=lambda line: print(line, file=sys.stderr))
        outs = {"cache_root": props["cache_root"], "sources": props["sources"], "path": image.path, "sha256": image.sha256, "size": image.size,
                "min_ram_mib": image.min_ram_mib}
        return CreateResult(id_=image.sha256[:16], outs=outs)

    def read_known(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props.get("path") or _sha256(props["path"]) != props.get("sha256"):
            return ReadResult(None, {})  # gone or changed: the next up builds it again
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        pass  # the cache keeps it for the next stack (~/.cache/openstack-deploy/images; remove it by hand)


class GuestImage(Resource, module="images", name="GuestImage"):
    path: pulumi.Output[str]
    sha256: pulumi.Output[str]
    min_ram_mib: pulumi.Output[int]

    def __init__(self, name: str, cache_root: str, opts: Optional[pulumi.ResourceOptions] = None):
        sources = guest_image.cache_key((), guest_image.guest_sources())
        super().__init__(_GuestImageProvider(), name, {"cache_root": os.path.abspath(cache_root), "sources": sources,
                                                       "path": None, "sha256": None, "size": None, "min_ram_mib": None},
                         opts)
