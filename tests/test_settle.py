"""The wait at the end of a run (components/settle.py) does what the SDK's own does, each case run with both: it
ends once no output is pending (those made meanwhile included), raises the first that fails as soon as it fails,
and passes over a resource the engine reported failed."""

import asyncio
import importlib.metadata

import pulumi
import pytest
from pulumi.runtime import stack as sdk_stack
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import ResourceRegistrationFailed

from components import settle

SDK_WAIT = sdk_stack.wait_for_rpcs  # (as imported: the SDK's own)
WAITS = pytest.mark.parametrize("wait", [SDK_WAIT, settle.wait_for_rpcs], ids=["sdk", "settle"])


def run(scenario):
    async def main():
        before = set(SETTINGS.outputs)
        try:
            return await scenario(asyncio.get_running_loop())
        finally:
            with SETTINGS.lock:  # (this test's outputs only)
                SETTINGS.outputs.intersection_update(before)

    return asyncio.run(main())


def test_written_against_the_pinned_sdk():
    assert importlib.metadata.version("pulumi") == settle.SDK_VERSION


@WAITS
def test_waits_for_every_output_and_for_those_made_meanwhile(wait):
    async def scenario(loop):
        first, later = loop.create_future(), loop.create_future()
        made = []
        # An apply that makes another output once its source resolves: that one is only tracked from then on.
        pulumi.Output.from_input(first).apply(lambda _: made.append(pulumi.Output.from_input(later)))
        loop.call_later(0.05, first.set_result, 1)
        loop.call_later(0.2, later.set_result, 2)
        await asyncio.wait_for(wait(), 2)
        assert made and later.done()

    run(scenario)


@WAITS
def test_raises_the_first_failure_at_once(wait):
    async def scenario(loop):
        failing, slow = loop.create_future(), loop.create_future()
        pulumi.Output.from_input(failing).apply(lambda v: v)
        pulumi.Output.from_input(slow).apply(lambda v: v)
        loop.call_later(0.05, failing.set_exception, RuntimeError("a template failed"))
        with pytest.raises(RuntimeError, match="a template failed"):
            await asyncio.wait_for(wait(), 2)
        assert not slow.done()  # not once everything else is done
        slow.set_result(None)

    run(scenario)


@WAITS
def test_raises_a_failure_of_an_output_made_meanwhile(wait):
    async def scenario(loop):
        first, failing, slow = loop.create_future(), loop.create_future(), loop.create_future()
        pulumi.Output.from_input(first).apply(lambda _: pulumi.Output.from_input(failing).apply(lambda v: v) and None)
        pulumi.Output.from_input(slow).apply(lambda v: v)
        loop.call_later(0.05, first.set_result, 1)
        loop.call_later(0.1, failing.set_exception, RuntimeError("made by an apply"))
        loop.call_later(0.15, slow.set_result, 1)  # (the SDK's loop looks at new outputs when one completes)
        with pytest.raises(RuntimeError, match="made by an apply"):
            await asyncio.wait_for(wait(), 2)

    run(scenario)


@WAITS
def test_an_output_failed_before_the_wait_fails_it(wait):
    async def scenario(loop):
        failed, slow = loop.create_future(), loop.create_future()
        failed.set_exception(RuntimeError("failed while the program ran"))
        pulumi.Output.from_input(failed).apply(lambda v: v)
        pulumi.Output.from_input(slow).apply(lambda v: v)
        await asyncio.sleep(0.01)  # the failure reaches the outputs
        with pytest.raises(RuntimeError, match="failed while the program ran"):
            await asyncio.wait_for(wait(), 2)
        slow.set_result(None)

    run(scenario)


@WAITS
def test_a_resource_the_engine_reported_failed_does_not_end_the_wait(wait):
    """Under --continue-on-error the SDK faults a failed resource's outputs with ResourceRegistrationFailed and goes
    on waiting for the rest."""
    async def scenario(loop):
        failed, slow = loop.create_future(), loop.create_future()
        pulumi.Output.from_input(failed).apply(lambda v: v)
        pulumi.Output.from_input(slow).apply(lambda v: v)
        loop.call_later(0.05, failed.set_exception, ResourceRegistrationFailed("resource x failed to register"))
        loop.call_later(0.2, slow.set_result, 1)
        await asyncio.wait_for(wait(), 2)
        assert slow.done()

    run(scenario)


def test_install_puts_it_where_the_sdk_runner_calls_it(monkeypatch):
    monkeypatch.setattr(sdk_stack, "wait_for_rpcs", SDK_WAIT)  # (restored afterwards)
    assert settle.install()
    assert sdk_stack.wait_for_rpcs is settle.wait_for_rpcs  # run_pulumi_func calls it by this name
    monkeypatch.setattr(settle.importlib.metadata, "version", lambda _: "3.999.0")
    monkeypatch.setattr(sdk_stack, "wait_for_rpcs", SDK_WAIT)
    assert not settle.install() and sdk_stack.wait_for_rpcs is SDK_WAIT  # another SDK keeps its own
