"""Adopting what a cloud deployed by an earlier release of this program already has, instead of creating it
again: `scripts/upgrade` names, in a JSON file given by OSD_ADOPT for one `up`, the ID of each resource to import
(`{"keystone-service-project": "<project id>", ...}`). Outside that run the table is empty and nothing changes."""

from __future__ import annotations

import functools
import json
import os
from typing import Optional, Sequence

import pulumi

ADOPT_ENV = "OSD_ADOPT"


@functools.cache
def _table() -> dict[str, str]:
    path = os.environ.get(ADOPT_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def options(name: str, unset_before: Sequence[str] = ()) -> Optional[pulumi.ResourceOptions]:
    """Import `name` by its recorded ID when it is adopted. `unset_before`: properties the earlier release did not
    set or Keystone never shows back (a password); the import ignores them and the next `up` sets them."""
    found = _table().get(name)
    if found is None:
        return None
    return pulumi.ResourceOptions(import_=found, ignore_changes=list(unset_before))
