"""Benchmark: Pave's drift engine against Evidently's data-drift report on the same data.

    .venv/bin/python benchmarks/drift.py                       # 1,000,000 x 100 numeric features
    .venv/bin/python benchmarks/drift.py --rows 100000 --features 20   # while developing

What it does:

1. generates a reference and a current table (numeric features of mixed shapes:
   normal, lognormal, uniform, small integers; the first 10% of the features
   shifted by half a standard deviation in the current table) and writes both
   as parquet under ``~/.cache/pave-bench/drift-data``;
2. runs Pave in a subprocess pinned to one core: ``build_reference`` on the
   reference table, then ``compute_drift`` on the current table, once with
   Wasserstein (Evidently's default test for large numeric columns, same 0.1
   threshold on the std-normalised distance) and once with PSI (Pave's default);
3. creates a venv under ``~/.cache/pave-bench/evidently`` (Evidently's pins
   conflict with Pave's), pip-installs Evidently there, and runs
   ``Report([DataDriftPreset()])`` in a subprocess with that venv's python,
   pinned to one core, on the same parquet files.

Evidently takes about 12 s per feature at a million rows, so by default it runs
on all rows of the first ``--evidently-features`` features (10), Pave is run on
exactly that subset too for a measured like-for-like ratio, and Evidently's
time for all features is extrapolated linearly in the number of features (it
tests columns one by one) and printed as an extrapolation. ``--evidently-features 0``
runs it on everything (about 20 minutes at full size).

Memory: each worker reads the data first, then resets the kernel's peak-RSS
mark (``/proc/self/clear_refs``) and reports the peak RSS above what the loaded
data already took, per phase; ``ru_maxrss`` (whole-process peak) is shown too.
RSS can stay flat when freed heap is reused, so Pave's phases are also run once
more under ``tracemalloc`` (numpy reports its buffers to it) for the peak of
what they allocate. Evidently is not traced: tracing would slow its
Python-heavy code and it takes minutes already.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "pave-bench"
EVIDENTLY_VENV = CACHE / "evidently"
# Evidently 0.7 still imports pandas internals removed in pandas 3.
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
SHIFTED_SHARE = 0.1


# --- worker side (runs under Pave's venv or Evidently's; stdlib + numpy + pandas only) ----------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _measure(fn: Any) -> tuple[Any, float, float]:
    """Run fn(); return (result, seconds, peak MB above the RSS before it)."""
    with contextlib.suppress(OSError):  # not Linux, or not allowed: then the peak is since start
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, max(_status_kb("VmHWM") - before, 0) / 1024


def _traced_peak_mb(fn: Any) -> float:
    """Peak of Python-visible allocations (numpy's included) while fn() runs, in MB.

    Run apart from the timed run: tracing slows allocation-heavy code.
    """
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _load(path: Path, rows: int, features: int) -> Any:
    import pandas as pd

    columns = [f"f{i:03d}" for i in range(features)]
    return pd.read_parquet(path, columns=columns).iloc[:rows].copy()


def worker(engine: str, data: Path, rows: int, features: int) -> dict[str, Any]:
    """Time and measure one engine on the first rows x features of the data."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    reference = _load(data / "reference.parquet", rows, features)
    current = _load(data / "current.parquet", rows, features)
    out: dict[str, Any] = {"engine": engine, "rows": rows, "features": features}
    if engine == "pave":
        from pave.monitoring.drift import DriftConfig, DriftRule, build_reference, compute_drift

        ref, out["build_s"], out["build_mb"] = _measure(lambda: build_reference(reference))
        out["build_traced_mb"] = _traced_peak_mb(lambda: build_reference(reference))
        out["reference_json_mb"] = len(json.dumps(ref.to_dict())) / 2**20
        for method in ("wasserstein", "psi"):
            config = DriftConfig(numeric=DriftRule(method, 0.1 if method == "wasserstein" else 0.2))
            report, out[f"{method}_s"], out[f"{method}_mb"] = _measure(
                lambda config=config: compute_drift(ref, current, config)
            )
            out[f"{method}_drifted"] = len(report.drifted_features)
            out[f"{method}_traced_mb"] = _traced_peak_mb(
                lambda config=config: compute_drift(ref, current, config)
            )
    else:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        snapshot, out["report_s"], out["report_mb"] = _measure(
            lambda: Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        )
        counts = [m["value"] for m in snapshot.dict()["metrics"] if "DriftedColumnsCount" in m["metric_name"]]
        out["drifted"] = int(counts[0]["count"]) if counts else None
    out["process_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# --- driver side (Pave's venv) ------------------------------------------------------------------------


def make_data(rows: int, features: int, seed: int = 0) -> Path:
    """Write reference.parquet and current.parquet once per size; reuse them afterwards."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = CACHE / "drift-data" / f"{rows}x{features}-s{seed}"
    if (folder / "current.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shapes = [
        lambda n: rng.normal(50.0, 10.0, n),
        lambda n: rng.lognormal(3.0, 0.8, n),
        lambda n: rng.uniform(-1.0, 1.0, n),
        lambda n: rng.integers(0, 20, n).astype(np.float64),
    ]
    for name, shifted in (("reference", False), ("current", True)):
        columns = {}
        for i in range(features):
            values = shapes[i % len(shapes)](rows)
            if shifted and i < max(1, int(features * SHIFTED_SHARE)):
                values += 0.5 * values.std()
            columns[f"f{i:03d}"] = values
        pq.write_table(pa.table(columns), folder / f"{name}.parquet")
        del columns
    return folder


def ensure_evidently() -> Path:
    """Evidently's own venv; created and pip-installed on first use."""
    python = EVIDENTLY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently.presets, pyarrow"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def run_worker(python: Path | str, engine: str, data: Path, rows: int, features: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = ["--worker", engine, "--data", str(data), "--rows", str(rows), "--features", str(features)]
    done = subprocess.run(
        [str(python), __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in reference and in current")
    parser.add_argument("--features", type=int, default=100, help="numeric features")
    parser.add_argument(
        "--evidently-features", type=int, default=10, help="features Evidently runs on (full rows); 0 = all"
    )
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--worker", choices=["pave", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.rows, args.features)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    with console.status(f"writing {args.rows:,} x {args.features} reference and current parquet files"):
        data = make_data(args.rows, args.features)
    with console.status("Pave, full size"):
        pave = run_worker(sys.executable, "pave", data, args.rows, args.features)

    title = f"Drift, {args.rows:,} reference vs {args.rows:,} current rows, {args.features} features"
    table = Table(title=title)
    for column in (
        "engine",
        "rows",
        "phase",
        "time (s)",
        "RSS peak over data (MB)",
        "traced peak (MB)",
        "drifted",
    ):
        table.add_column(column, justify="left" if column in ("engine", "phase") else "right", no_wrap=True)

    def pave_rows(result: dict[str, Any]) -> None:
        n = f"{result['rows']:,} x {result['features']}"
        build = (f"{result['build_s']:.2f}", f"{result['build_mb']:.0f}", f"{result['build_traced_mb']:.0f}")
        table.add_row("Pave", n, "build_reference", *build, "")
        for method in ("wasserstein", "psi"):
            table.add_row(
                "Pave", n, f"compute_drift ({method})", f"{result[f'{method}_s']:.2f}",
                f"{result[f'{method}_mb']:.0f}", f"{result[f'{method}_traced_mb']:.0f}",
                str(result[f"{method}_drifted"]),
            )  # fmt: skip

    pave_rows(pave)
    evidently: dict[str, Any] | None = None
    pave_same: dict[str, Any] | None = None
    if not args.skip_evidently:
        ev_features = min(args.evidently_features or args.features, args.features)
        with console.status("Evidently's venv"):
            python = ensure_evidently()
        with console.status(f"Evidently on {ev_features} features (about 12 s per feature per million rows)"):
            evidently = run_worker(python, "evidently", data, args.rows, ev_features)
        if ev_features == args.features:
            pave_same = pave
        else:
            pave_same = run_worker(sys.executable, "pave", data, args.rows, ev_features)
            pave_rows(pave_same)
        table.add_row(
            "Evidently", f"{args.rows:,} x {ev_features}", "DataDriftPreset report",
            f"{evidently['report_s']:.2f}", f"{evidently['report_mb']:.0f}", "not traced",
            str(evidently["drifted"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"Pave: reference JSON {pave['reference_json_mb']:.1f} MB; "
        f"process peak RSS {pave['process_peak_mb']:.0f} MB (includes both tables)"
    )
    if evidently and pave_same:
        same = evidently["report_s"] / pave_same["wasserstein_s"]
        with_build = evidently["report_s"] / (pave_same["build_s"] + pave_same["wasserstein_s"])
        console.print(
            f"Same data ({args.rows:,} rows x {evidently['features']} features): Evidently "
            f"{evidently['report_s']:.1f} s vs Pave compute_drift {pave_same['wasserstein_s']:.2f} s "
            f"(wasserstein) -> [bold]{same:.0f}x[/bold]; {with_build:.0f}x with Pave's build_reference "
            f"counted too. Evidently process peak RSS {evidently['process_peak_mb']:.0f} MB."
        )
        if evidently["features"] < args.features:
            scaled = evidently["report_s"] * args.features / evidently["features"]
            both = pave["build_s"] + pave["wasserstein_s"]
            console.print(
                f"All {args.features} features, EXTRAPOLATED for Evidently (linear in features, which it "
                f"tests one by one; not run): about {scaled:.0f} s vs Pave {pave['wasserstein_s']:.2f} s "
                f"-> about {scaled / pave['wasserstein_s']:.0f}x ({scaled / both:.0f}x with build_reference)"
            )


if __name__ == "__main__":
    main()
