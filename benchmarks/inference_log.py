"""What the inference log costs an event loop that serves requests, in CPU time per record.

A uvloop loop plays a gateway worker: ``--concurrency`` tasks each answer ``--requests`` requests in
turn, each request a fixed slice of Python work (``--work`` µs) and a round trip through a socket
pair (so the loop sleeps in epoll and releases the GIL as a serving loop does), then one record to
the inference log: the gateway's own ``Record`` of a [1, 30] float64 matrix with ``predict`` and
``predict_proba``. The process's CPU time (user + system, every thread) with the log, minus the
same run without it, divided by the records, is what the log costs a request (alternated with and
without, median of ``--rounds``). The switch interval and the collector's thresholds are the
gateway's.

    .venv/bin/python benchmarks/inference_log.py                      # this checkout's log
    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/inference_log.py   # another one's
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uvloop
from harness import load_average

from pave.serving.gateway import GC_THRESHOLDS
from pave.serving.inference_log import InferenceLog, Record
from pave.serving.server import SWITCH_INTERVAL


def spin(microseconds: float) -> None:
    """Burn this much CPU time (not wall time: the machine is shared)."""
    end = time.thread_time() + microseconds / 1e6
    while time.thread_time() < end:
        pass


async def serve(log: InferenceLog | None, concurrency: int, requests: int, work: float) -> None:
    loop = asyncio.get_running_loop()
    columns = tuple(f"f{i}" for i in range(30))
    rng = np.random.default_rng(0)

    async def client(k: int) -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for i in range(requests):
                await loop.sock_sendall(a, b"x")
                await loop.sock_recv(b, 1)  # the loop waits in epoll, as between requests
                spin(work)
                if log is not None:
                    log.record(
                        Record(
                            f"{k}-{i}",
                            "cancer",
                            "1",
                            time.time(),
                            0.0004,
                            rng.normal(size=(1, 30)),
                            columns,
                            {"predict": np.array([1]), "predict_proba": rng.random((1, 2))},
                        )
                    )
        finally:
            a.close()
            b.close()

    await asyncio.gather(*(client(k) for k in range(concurrency)))


def one(with_log: bool, concurrency: int, requests: int, work: float) -> tuple[float, float]:
    """CPU seconds of the process (every thread) and of the loop's thread alone, for one run."""
    with tempfile.TemporaryDirectory() as folder:
        log = InferenceLog(Path(folder)) if with_log else None
        if log is not None:
            log.start()
        before, loop_before = time.process_time(), time.thread_time()
        uvloop.run(serve(log, concurrency, requests, work))
        loop_after = time.thread_time()
        if log is not None:
            log.flush()
        after = time.process_time()
        if log is not None:
            assert log.written == concurrency * requests, (log.written, log.dropped)
            log.close()
    return after - before, loop_after - loop_before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300, help="per task")
    parser.add_argument("--work", type=float, default=50.0, help="µs of Python work per request")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.freeze()  # as the gateway does once its models are loaded
    gc.set_threshold(*GC_THRESHOLDS)
    import pave.serving.inference_log as module

    print(f"log: {module.__file__}; load average {load_average()}")
    n = args.concurrency * args.requests
    one(True, args.concurrency, 20, args.work)  # warm-up
    costs, on_loop = [], []
    for _ in range(args.rounds):
        without, loop_without = one(False, args.concurrency, args.requests, args.work)
        with_log, loop_with = one(True, args.concurrency, args.requests, args.work)
        costs.append((with_log - without) / n * 1e6)
        on_loop.append((loop_with - loop_without) / n * 1e6)
        print(
            f"  without {without / n * 1e6:.1f} µs/request, with the log {with_log / n * 1e6:.1f} "
            f"(the loop's thread {loop_without / n * 1e6:.1f} and {loop_with / n * 1e6:.1f})"
        )
    print(
        f"the log costs {statistics.median(costs):.1f} µs a request, {statistics.median(on_loop):.1f} of "
        f"them on the loop's thread (medians of {args.rounds}; all threads min {min(costs):.1f}, "
        f"max {max(costs):.1f}); load average {load_average()}"
    )


if __name__ == "__main__":
    main()
