"""Pipeline engine overhead: 40 sequential trivial steps, Pave's engine vs Prefect 3.

Pave runs in this process (the engine alone: no MLflow), with caching off, on with an empty cache
(hash + store every output) and on with a warm cache (every step skipped). Prefect 3 runs the same
chain of 40 ``@task`` calls in one ``@flow`` in its own virtualenv (created on first use under
``~/.cache/pave-bench/prefect``), in a long-lived subprocess with a private ``PREFECT_HOME`` and its
ephemeral local API server (``PREFECT_API_URL`` unset). Rounds alternate Pave and Prefect; each
side is warmed up first; the table shows medians.

    python benchmarks/pipeline_overhead.py [--rounds 7] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pave.pipelines.engine import run_pipeline
from pave.pipelines.spec_file import parse_spec

VENV = Path.home() / ".cache" / "pave-bench" / "prefect"

PREFECT_WORKER = """
import json, sys, time
from prefect import flow, task

@task
def inc(x):
    return x + 1

@flow
def chain(n: int):
    x = 0
    for _ in range(n):
        x = inc(x)
    return x

for line in sys.stdin:
    n = int(line)
    start = time.perf_counter()
    result = chain(n)
    elapsed = time.perf_counter() - start
    assert result == n, result
    print(json.dumps({"seconds": elapsed}), flush=True)
"""

STEPS_PY = """
def start() -> int:
    return 0


def inc(x: int) -> int:
    return x + 1
"""


def prefect_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import prefect"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "prefect>=3"], check=True)
    return python


def pave_project(root: Path, steps: int) -> str:
    lines = ["name: bench", "steps:", "  - {name: s00, function: steps:start}"]
    lines += [
        f"  - {{name: s{i:02d}, function: steps:inc, inputs: {{x: s{i - 1:02d}}}}}" for i in range(1, steps)
    ]
    (root / "steps.py").write_text(textwrap.dedent(STEPS_PY))
    text = "\n".join(lines) + "\n"
    (root / "pave.yaml").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    console = Console()

    python = prefect_python()
    work = Path(tempfile.mkdtemp(prefix="pave-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(work / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    worker = subprocess.Popen(
        [str(python), "-c", PREFECT_WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    stdin, stdout = worker.stdin, worker.stdout
    assert stdin is not None
    assert stdout is not None

    def prefect_once() -> float:
        stdin.write(f"{args.steps}\n")
        stdin.flush()
        return float(json.loads(stdout.readline())["seconds"])

    root = work / "project"
    root.mkdir()
    spec = parse_spec(pave_project(root, args.steps))

    def pave_once(cache_dir: Path | None, tag: str) -> float:
        start = time.perf_counter()
        result = run_pipeline(
            spec, root, sources={}, source_hashes={}, cache_dir=cache_dir, log_dir=work / "logs" / tag
        )
        elapsed = time.perf_counter() - start
        assert result.output(f"s{args.steps - 1:02d}") == args.steps - 1
        return elapsed

    with console.status("warming up (Prefect starts its ephemeral server; this takes a while)"):
        prefect_once()
        pave_once(None, "warmup")
    times: dict[str, list[float]] = {"off": [], "cold": [], "warm": [], "prefect": []}
    for i in range(args.rounds):
        with console.status(f"round {i + 1}/{args.rounds}"):
            times["off"].append(pave_once(None, f"off{i}"))
            cache = work / f"cache{i}"
            times["cold"].append(pave_once(cache, f"cold{i}"))
            times["warm"].append(pave_once(cache, f"warm{i}"))
            times["prefect"].append(prefect_once())
    stdin.close()
    worker.wait(timeout=120)

    medians = {k: statistics.median(v) for k, v in times.items()}
    table = Table(title=f"{args.steps} sequential trivial steps, median of {args.rounds} alternated rounds")
    for column in ("engine", "total (ms)", "per step (ms)", "Prefect / this"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    labels = {
        "off": "Pave, cache off",
        "cold": "Pave, cache on (empty)",
        "warm": "Pave, cache on (all hits)",
        "prefect": "Prefect 3 (ephemeral server)",
    }
    for key, label in labels.items():
        total = medians[key] * 1000
        table.add_row(
            label, f"{total:.1f}", f"{total / args.steps:.2f}", f"{medians['prefect'] / medians[key]:.1f}x"
        )
    console.print(table)
    console.print(json.dumps({k: round(v * 1000, 2) for k, v in medians.items()}))


if __name__ == "__main__":
    main()
