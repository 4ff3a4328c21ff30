"""The dynamic-provider plugin's server: the SDK's own (`python -m pulumi.dynamic`), with more threads.

The engine sends every step of every dynamic resource of a run to one plugin process. The SDK serves it with four
threads, so a refresh of the lab's ~200 host steps read at most four at a time, each mostly waiting on its host's
answer, whatever the engine's `--parallel`. Here the same server gets `WORKERS` threads (the engine's parallelism,
PULUMI_PARALLEL in scripts/env.sh, stays the limit; SSH sessions per host are capped in ssh.py).

scripts/bootstrap installs toolchain/pulumi-resource-pulumi-python, which runs this module, next to the CLI in
place of the SDK's script of the same name (the engine looks there for this plugin).
"""

from __future__ import annotations

import runpy
from concurrent import futures

import grpc

WORKERS = 64


def main() -> None:
    serve = grpc.server

    def wider(thread_pool, *args, **kwargs):  # the SDK's call, with our pool in place of its four threads
        thread_pool.shutdown(wait=False)
        return serve(futures.ThreadPoolExecutor(max_workers=WORKERS), *args, **kwargs)

    grpc.server = wider
    runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
