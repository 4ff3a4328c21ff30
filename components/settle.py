"""The end of a run: the Pulumi SDK's wait for what the program left pending, without its quadratic cost.

Once the program's module code has returned, the SDK (`pulumi.runtime.stack.wait_for_rpcs`) waits for every output
still pending (each resource's properties, each apply) in a loop of `asyncio.wait(FIRST_COMPLETED)` over all of
them: each time one completes, it takes every pending output again (a callback added to and removed from each).
The time goes with the pending outputs times the completions. In a preview of a cloud with 100 compute hosts
about 37,000 outputs were pending while the engine answered 2,250 registrations in some 180 wake-ups: that loop
took 28 s of the program's 51 s of CPU, more than anything else the program or the engine did.

`wait_for_rpcs` here is the SDK's own (3.259.0), but for that loop: each pending output gets one callback, and
each wake-up (the same ones as the SDK's: an output completes) takes only the outputs made since. It ends, and
fails, exactly when the SDK's does: once no output is pending, or at the first output that fails, raising its
exception (an output of a resource the engine reported failed under --continue-on-error is passed over, as the
SDK does). `install` puts it in place of the SDK's for the version it was written against; with another SDK
version the SDK's own runs (slower, otherwise the same). It changes nothing of what is registered or when.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Optional

from pulumi import log
from pulumi.runtime import settings
from pulumi.runtime import stack as sdk_stack
from pulumi.runtime.settings import SETTINGS, _get_rpc_manager
from pulumi.runtime.stack import ResourceRegistrationFailed

SDK_VERSION = "3.259.0"  # whose wait_for_rpcs this one is (requirements.txt pins it)


def _failed(task: asyncio.Future) -> bool:
    """Whether the SDK's wait would raise for this finished output."""
    if task.cancelled():
        return True
    error = task.exception()
    return error is not None and not isinstance(error, ResourceRegistrationFailed)


async def drain_outputs() -> None:
    """Waits until no output is pending; raises the exception of the first that fails."""
    wake = asyncio.Event()
    left = 0
    failed: Optional[asyncio.Future] = None

    def finished(task: asyncio.Future) -> None:
        nonlocal left, failed
        left -= 1
        if failed is None and _failed(task):
            failed = task
        wake.set()

    while True:
        wake.clear()
        with SETTINGS.lock:  # the outputs made since the last wake-up (the SDK's cleanup tolerates their removal)
            new = list(SETTINGS.outputs)
            SETTINGS.outputs.clear()
        left += len(new)
        for task in new:
            task.add_done_callback(finished)  # (on one already done: called soon)
        if failed is not None:
            await failed  # raises its exception, as the SDK's `await task`
        if left == 0:
            with SETTINGS.lock:
                if not SETTINGS.outputs:
                    return
            continue
        await wake.wait()


async def wait_for_rpcs(await_all_outstanding_tasks=True) -> None:
    """pulumi.runtime.stack.wait_for_rpcs of the SDK 3.259.0, its outputs loop replaced by drain_outputs."""
    log.debug("Waiting for outstanding RPCs to complete")

    rpc_manager = _get_rpc_manager()
    while True:
        while len(rpc_manager.rpcs) > 0:
            await asyncio.sleep(0)
            if settings.excessive_debug_output:
                log.debug(f"waiting for quiescence; {len(rpc_manager.rpcs)} RPCs outstanding")
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                if rpc_manager.unhandled_exception is not None:
                    cause = rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
                    raise exn from cause
                raise

        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)

        log.debug("RPCs successfully completed")

        if await_all_outstanding_tasks:
            await drain_outputs()
            log.debug("All outstanding outputs completed.")

        if len(rpc_manager.rpcs) == 0:
            break


def install() -> bool:
    """Puts wait_for_rpcs in place of the SDK's (which the SDK's program runner calls by name) if the SDK is the
    version it was written against. Returns whether it did."""
    if importlib.metadata.version("pulumi") != SDK_VERSION:
        return False
    sdk_stack.wait_for_rpcs = wait_for_rpcs
    return True
