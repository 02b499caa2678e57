"""The default gateway workers against one worker at c=8, interleaved: p99, CPU per request, connection split.

``benchmarks/serving.py`` runs each server through all its cells before the next, minutes apart:
on a shared machine the load changes between the default gateway's c=8 cell and the one-worker
gateway's. Here both run at once on the same store (`pave up`: token on, default workers,
inference log on; and `pave serve --workers 1`) and the cells alternate, A B A B ..., each client
(our own and `wrk`) at concurrency 8 for ``--seconds``, with the load average beside every cell.

    .venv/bin/python benchmarks/gateway_workers.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
from pathlib import Path

from harness import load_average

from serving import (
    Result,
    _sample_spread,
    console,
    load_raw,
    load_wrk,
    servers,
    serving_root,
    start,
    start_pave,
    stop,
    train,
    tree_cpu,
)

CONCURRENCY = 8


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pave-bench-workers-"))
    model, X, model_dir, joblib_dir = train(workdir)
    expected = model.predict(X).tolist()
    console.print(f"load average at start: {load_average()}")
    pave = start_pave(workdir, model, X)
    started = []
    try:
        pair = [
            s
            for s in servers(X, model_dir, joblib_dir, workdir, {"pave", "pave-1w"}, pave)
            if "named" not in s.name
        ]
        procs = {s.name: start(s, workdir / f"{s.name.split()[-1].strip(')')}.log") for s in pair}
        started = [p for s, p in zip(pair, procs.values(), strict=True) if s.process is None]
        results: dict[tuple[str, str], list[Result]] = {}
        for round_ in range(args.rounds):
            for client in ("own", "wrk"):
                for server in pair:
                    root = serving_root(procs[server.name].pid)
                    port = int(server.url.rsplit(":", 1)[1])
                    spread: list[str] = []
                    sampler = threading.Timer(args.seconds / 2, _sample_spread, args=(spread, root, port))
                    before = tree_cpu(root)
                    sampler.start()
                    if client == "own":
                        result: Result | None = asyncio.run(
                            load_raw(server, expected, CONCURRENCY, args.seconds)
                        )
                    else:
                        result = load_wrk(server, CONCURRENCY, args.seconds, workdir)
                    sampler.join()
                    if result is None or not result.requests:
                        continue
                    result.cpu_us = (tree_cpu(root) - before) / result.requests * 1e6
                    result.spread = spread[0] if spread else ""
                    result.load = load_average()
                    results.setdefault((client, server.name), []).append(result)
                    console.print(
                        f"round {round_ + 1} {client} {server.name}: p99 {result.p99:.2f} ms, "
                        f"{result.throughput:,.0f} req/s, CPU {result.cpu_us:.0f} µs/request, "
                        f"connections {result.spread}, {result.errors} errors, load {result.load}"
                    )
        for client in ("own", "wrk"):
            default, one = (results.get((client, s.name), []) for s in pair)
            if not default or not one:
                continue
            d = statistics.median(r.p99 for r in default)
            o = statistics.median(r.p99 for r in one)
            dc = statistics.median(r.cpu_us for r in default)
            oc = statistics.median(r.cpu_us for r in one)
            console.print(
                f"{client} c={CONCURRENCY}, median of {len(default)}: p99 default {d:.2f} ms vs one worker "
                f"{o:.2f} ms (ratio {d / o:.2f}); CPU {dc:.0f} vs {oc:.0f} µs/request (ratio {dc / oc:.2f})"
            )
    finally:
        for proc in started:
            stop(proc)
        stop(pave[0])
    console.print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
