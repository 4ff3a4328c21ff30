"""The SDK's own debug lines ("beginning rpc register resource", "resource registration prepared: ..."), kept in
the program unless asked for.

The Python SDK sends each one to the engine as a blocking call on the program's event loop: some five per resource,
about 860 in a preview of the two-node lab, 1.2 s of the program's 5.6 s, and as much again in the engine, which
records them in its event stream and log. The CLI shows them only with `--debug`; set OSD_SDK_DEBUG=1 to have them
sent again. Nothing else the program logs changes.
"""

from __future__ import annotations

import os

from pulumi import log

ENV = "OSD_SDK_DEBUG"


def install() -> None:
    if os.environ.get(ENV) != "1":
        log.debug = _dropped


def _dropped(msg: str, resource=None, stream_id=None, ephemeral=None) -> None:
    return None
