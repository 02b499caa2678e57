"""The default gateway workers against one worker at c=8, interleaved: p99, CPU per request, connection split.

``benchmarks/serving.py`` runs each server through all its cells before the next, minutes apart:
on a shared machine the load changes between the default gateway's c=8 cell and the one-worker
gateway's. Here both run at once on the same store (`pave up`: token on, default workers,
inference log on; and `pave serve --workers 1`) and the cells alternate, A B A B ..., each client
(our own and `wrk`) at concurrency 8 for ``--seconds``, with the load average beside every cell.

Both clients are closed loops: each connection sends its next request when the last is answered,
so every cell runs the machine flat out, and on two cores two workers and the load generator are
three busy processes on two cores. ``--paced`` adds open-loop cells nearer to how a gateway is
used: the same eight connections send at a fixed rate, a share of what one worker answered flat
out, and a request's latency counts from when it was due, not from when it was sent (a late
answer delays the next send; counting from the schedule keeps that wait in the percentiles).

    .venv/bin/python benchmarks/gateway_workers.py --rounds 3 --seconds 10
    .venv/bin/python benchmarks/gateway_workers.py --rounds 3 --seconds 10 --paced 0.5 --paced 0.8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness import load_average

from serving import (
    Result,
    Server,
    _sample_spread,
    console,
    load_raw,
    load_wrk,
    read_answer,
    servers,
    serving_root,
    start,
    start_pave,
    stop,
    summarise,
    train,
    tree_cpu,
)

CONCURRENCY = 8


async def load_paced(server: Server, concurrency: int, seconds: float, rate: float) -> Result:
    """``rate`` requests a second over ``concurrency`` keep-alive connections, each on its own
    schedule (staggered), latency counted from the moment a request was due; answers checked 200."""
    host = server.url.removeprefix("http://")
    extra = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
    path, body = server.request(0)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    interval = concurrency / rate  # each connection's gap between two due times

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(request)
        return (await read_answer(reader))[0] == 200

    streams = [await asyncio.open_connection(*host.split(":")) for _ in range(concurrency)]
    for i in range(200):  # warm-up, not measured
        await exchange(*streams[i % concurrency])
    start_at = time.perf_counter()
    deadline = start_at + seconds

    async def connection(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        due = start_at + index * interval / concurrency
        while due < deadline:
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                ok = await exchange(reader, writer)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            latencies.append(time.perf_counter() - due)
            errors += not ok
            due += interval

    await asyncio.gather(*(connection(i, r, w) for i, (r, w) in enumerate(streams)))
    elapsed = time.perf_counter() - start_at
    for _, writer in streams:
        writer.close()
    return summarise(server, f"paced {rate:,.0f}/s", concurrency, latencies, elapsed, errors)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--paced",
        type=float,
        action="append",
        default=[],
        help="Also open-loop cells at this share of one worker's closed-loop req/s (repeatable).",
    )
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

        def cell(round_: int, client: str, server: Server, run: Callable[[], Result | None]) -> None:
            root = serving_root(procs[server.name].pid)
            port = int(server.url.rsplit(":", 1)[1])
            spread: list[str] = []
            sampler = threading.Timer(args.seconds / 2, _sample_spread, args=(spread, root, port))
            before = tree_cpu(root)
            sampler.start()
            result = run()
            sampler.join()
            if result is None or not result.requests:
                return
            result.cpu_us = (tree_cpu(root) - before) / result.requests * 1e6
            result.spread = spread[0] if spread else ""
            result.load = load_average()
            results.setdefault((client, server.name), []).append(result)
            console.print(
                f"round {round_ + 1} {client} {server.name}: p99 {result.p99:.2f} ms, "
                f"p50 {result.p50:.2f} ms, "
                f"{result.throughput:,.0f} req/s, CPU {result.cpu_us:.0f} µs/request, "
                f"connections {result.spread}, {result.errors} errors, load {result.load}"
            )

        for round_ in range(args.rounds):
            for server in pair:
                cell(
                    round_,
                    "own",
                    server,
                    lambda s=server: asyncio.run(load_raw(s, expected, CONCURRENCY, args.seconds)),
                )
            for server in pair:
                cell(round_, "wrk", server, lambda s=server: load_wrk(s, CONCURRENCY, args.seconds, workdir))
        clients = ["own", "wrk"]
        flat_out = (
            statistics.median(r.throughput for r in results.get(("own", pair[1].name), []))
            if args.paced
            else 0
        )
        for share in args.paced:
            rate = share * flat_out
            client = f"paced {share:.0%} of one worker ({rate:,.0f}/s)"
            clients.append(client)
            for round_ in range(args.rounds):
                for server in pair:
                    cell(
                        round_,
                        client,
                        server,
                        lambda s=server, r=rate: asyncio.run(load_paced(s, CONCURRENCY, args.seconds, r)),
                    )
        for client in clients:
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
