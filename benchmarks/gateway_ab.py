"""The gateway from two checkouts, side by side and alternated: CPU per request, split by thread.

For an A/B of a change to the gateway on a shared machine, where minutes apart mean different
loads: two `pave up` (token on, default workers, inference log on), one running the code of
``--old SRC`` (a checkout's ``src`` folder, put first on ``PYTHONPATH``) and one this checkout's,
serve the same model; their cells alternate (A B, then B A, ...) with `wrk` sending one [1, 30]
tensor at each concurrency of ``--levels`` for ``--seconds``. For each cell: requests per second,
p99, and the gateway's CPU time a request (its processes, user + system, from /proc) split into
the worker processes' main threads (the event loops) and every other thread (the inference log's
writer, the metrics, gRPC), with the load average. Medians per side at the end.

    git archive main src | tar -x -C /tmp/old
    .venv/bin/python benchmarks/gateway_ab.py --old /tmp/old/src --rounds 4 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from harness import load_average

from serving import Server, console, descendants, load_wrk, servers, serving_root, start_pave, stop, train


def thread_cpu(root: int) -> tuple[float, float]:
    """CPU seconds of the main threads and of the other threads of a process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for pid in descendants(root):
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                fields = (task / "stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if task.name == str(pid):
                main += seconds
            else:
                other += seconds
    return main, other


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, type=Path, help="the other checkout's src folder")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--levels", default="8,64")
    args = parser.parse_args()
    if not (args.old / "pave" / "__init__.py").is_file():
        parser.error(f"--old {args.old}: no pave package there; give a checkout's src folder")
    levels = [int(level) for level in args.levels.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="pave-bench-ab-"))
    model, X, model_dir, joblib_dir = train(workdir)
    console.print(f"load average at start: {load_average()}")
    sides: dict[str, tuple] = {}
    try:
        for side in ("old", "new"):
            folder = workdir / side
            folder.mkdir()
            saved = os.environ.get("PYTHONPATH")
            if side == "old":
                os.environ["PYTHONPATH"] = str(args.old.resolve())
            try:
                sides[side] = start_pave(folder, model, X)
            finally:
                os.environ.pop("PYTHONPATH", None)
                if saved is not None:
                    os.environ["PYTHONPATH"] = saved

        def tensor_server(pave: tuple) -> Server:
            every = servers(X, model_dir, joblib_dir, workdir, {"pave"}, pave)
            return next(s for s in every if "tensor" in s.name)

        cells: dict[tuple[str, int], list[tuple[float, float, float, float, float]]] = {}
        for round_ in range(args.rounds):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for concurrency in levels:
                for side in order:
                    pave = sides[side]
                    server = tensor_server(pave)
                    root = serving_root(pave[0].pid)
                    before = thread_cpu(root)
                    result = load_wrk(server, concurrency, args.seconds, workdir)
                    after = thread_cpu(root)
                    if result is None or not result.requests:
                        raise SystemExit("wrk is needed: apt-get install wrk (or scripts/tools)")
                    loops = (after[0] - before[0]) / result.requests * 1e6
                    others = (after[1] - before[1]) / result.requests * 1e6
                    cells.setdefault((side, concurrency), []).append(
                        (result.throughput, result.p99, loops + others, loops, others)
                    )
                    console.print(
                        f"round {round_ + 1} {side} c={concurrency}: {result.throughput:,.0f} req/s, "
                        f"p99 {result.p99:.2f} ms, CPU {loops + others:.0f} µs/request (loops {loops:.0f}, "
                        f"other threads {others:.0f}), {result.errors} errors, load {load_average()}"
                    )
        for concurrency in levels:
            for side in ("old", "new"):
                rows = cells[(side, concurrency)]
                rate, p99, cpu, loops, others = (statistics.median(r[i] for r in rows) for i in range(5))
                console.print(
                    f"{side} c={concurrency}, median of {len(rows)}: {rate:,.0f} req/s, p99 {p99:.2f} ms, "
                    f"CPU {cpu:.0f} µs/request (loops {loops:.0f}, other threads {others:.0f})"
                )
    finally:
        for pave in sides.values():
            stop(pave[0])
    console.print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
