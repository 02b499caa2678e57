"""Benchmark: batch scoring and tuning overhead, Pave against its peers, side by side in one run.

    .venv/bin/python benchmarks/compute.py                 # the full run (about 5 minutes)
    .venv/bin/python benchmarks/compute.py --rows 200000 --forest-rows 50000  # while developing

Batch scoring (rows per second over the same Parquet file, end to end: read, predict, write):

Two models, each over its own Parquet file: ``linear`` (StandardScaler + LogisticRegression, where
prediction is almost free and the job is reading and writing Parquet) and ``forest`` (a random
forest of 100 trees of depth 12, where prediction is the work a batch job exists for).

1. Pave: ``pave.serving.batch.score_table`` with its default workers (the CPUs of this process),
   the version resolved in the registry and the model loaded through the gateway's predict path
   (compiled for both models) in every run, twice: into a folder of Parquet part files written
   in parallel (``--output scored/``, committed with a ``_SUCCESS`` manifest), and into one
   Parquet file (``--output scored.parquet``: one file is encoded by one thread);
2. the peer: ``mlflow.pyfunc.load_model(uri)`` (in every run too, as a user's script does) and its
   ``predict`` on the whole table read with pandas, the predictions added and written back to
   Parquet;
3. the limit: Pave's compiled predict in-process on the table already in memory as a matrix
   (no reading, no writing, one process);
4. I/O only: no model, the table read with pyarrow and written back with two added columns into
   one file, with Pave's writer settings and its columns without nulls declared not null (the floor
   of any end-to-end path that writes the input's columns to one file);
5. I/O only, parallel: the same for every row group as a part file, one part per thread on every
   core (the floor of any path that writes the input's rows to a folder here: the most any batch
   job can reach over this file on this machine).

Tuning overhead, for three objectives (a random forest, ``max_depth`` and ``n_estimators`` searched,
TPE seeded): ``small`` on 4,000 x 20 rows, 24 trials (about 0.2 s a trial on a quiet machine: the
overhead per trial is what shows), ``realistic`` on 20,000 x 20 rows, 12 trials (about 1 s a trial)
and ``spec``, the realistic objective with the issue's spec example's 40 trials (``trials: 40,
parallel: 4``: the fixed costs of ``ray.init`` and the workers' start spread over more trials;
``--spec-trials 0`` leaves it out), each with:

1. plain Optuna: ``study.optimize`` in memory, one trial at a time;
2. ``pave tune`` with ``parallel: 1`` (every trial an MLflow child run, the study in SQLite, the data
   step cached after the first trial);
3. ``pave tune`` with ``parallel: 4`` on a two-node Ray cluster started here (two CPUs per node;
   this machine has two cores, so at most two trials really run at once). The small objective runs
   there twice: first as the cluster's first tuning (**cold**: the cluster's first driver, no pool
   worker of the project yet, so four workers start and import Ray, numpy, pandas and
   scikit-learn; this process imports Ray), then again (**warm**: the project's pool is up and this
   process has Ray imported, as for a data scientist's next tuning of the project in a notebook).
   Then once more after its pool was stopped (``stopped``: a cold pool on a cluster that had a
   driver before, as after the pool's 10 idle minutes: Ray's wait for the first driver of a cluster,
   which starts a worker process per CPU of the head before ``ray.init`` returns, is not paid).
   The realistic and spec cells come after, warm too. Plain Optuna's small study runs once more
   after the Ray cells, so that the warm cell has a peer measured under the same load.

The platform's databases (MLflow's and the study storage) are created before the tuning cells are
timed, as ``pave up`` made them before anyone tunes. Every cell repeats until it has run for at
least 10 s (each batch cell after one untimed run, whose time is printed); a batch cell also
prints its CPU-seconds a run (every thread of this process), steadier than rates on a busy
machine. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import free_port, load_average

MIN_SECONDS = 10.0


def _repeat(work: Callable[[], int]) -> tuple[float, int, int]:
    """Run ``work`` (returns rows done) until 10 s passed: (seconds, rows, runs)."""
    started, rows, runs = time.perf_counter(), 0, 0
    while True:
        rows += work()
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            return elapsed, rows, runs


# --- batch scoring ---------------------------------------------------------------------------------


def _model(kind: str, train: pd.DataFrame) -> Any:
    """The model scored: ``linear`` (prediction is almost free: the job is Parquet I/O) or ``forest``
    (a random forest of realistic size, 100 trees of depth 12: prediction is the work)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    target = ((train["f0"] * train["f1"] + train["f2"] - train["f3"]) > 0).astype(int)
    if kind == "forest":
        forest = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=1)
        return forest.fit(train, target)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train, target)


def _two_columns(table: Any) -> Any:
    """``table`` with two columns as a model adds them (not null, as Pave declares them)."""
    import pyarrow as pa

    for name, values in (
        ("predict", np.zeros(table.num_rows, dtype=np.int64)),
        ("predict_proba_1", np.zeros(table.num_rows)),
    ):
        table = table.append_column(
            pa.field(name, pa.from_numpy_dtype(values.dtype), nullable=False), pa.array(values)
        )
    return table


def batch(folder: Path, rows: int, kind: str) -> dict[str, float]:
    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pave.serving.batch import score_table
    from pave.serving.batch_dataset import declared_required, input_codecs, null_free_columns, writer_options
    from pave.serving.batch_score import bind_frame
    from pave.serving.loading import load_model

    print(f"  batch model: {kind}, {rows:,} rows x 20 columns", flush=True)
    folder = folder / kind
    folder.mkdir()
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(20)]
    train = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=columns)
    model = _model(kind, train)
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", (folder / "art").as_uri()))
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=train.head(3),
            registered_model_name="bench",
            skops_trusted_types=["sklearn.tree._tree.Tree"] if kind == "forest" else None,  # our own
        )
    table = pd.DataFrame(rng.normal(size=(rows, 20)), columns=columns)
    source = folder / "in.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), source, row_group_size=100_000)
    cache = folder / "models"

    def pave(output: str) -> Callable[[], int]:
        def work() -> int:
            done = score_table(
                "bench",
                input_uri=str(source),
                output_uri=output,
                tracking_uri=tracking,
                cache_dir=cache,
                version="1",
            )
            return done.rows

        return work

    def peer() -> int:
        # as a user runs it, like Pave's job: the model loaded (from the registry) inside the timing
        pyfunc = mlflow.pyfunc.load_model("models:/bench/1")
        frame = pd.read_parquet(source)
        frame["predict"] = pyfunc.predict(frame)
        frame["model_version"] = "1"
        frame.to_parquet(folder / "peer.parquet", index=False)
        return len(frame)

    loaded = load_model("models:/bench/1", tracking_uri=tracking, cache_dir=cache)
    matrix = bind_frame(loaded.schema, table, "bench")

    def limit() -> int:
        loaded.predict(matrix)
        return rows

    def io_floor() -> int:
        # No model: read the table and write it back with two more columns into one file, in one
        # process, with the writer settings Pave uses (what reading and writing alone cost).
        read = declared_required(_two_columns(pq.read_table(source)), null_free_columns(source, "parquet"))
        options = writer_options(read.schema, input_codecs(source, "parquet"))
        pq.write_table(read, folder / "floor.parquet", **options)
        return int(read.num_rows)

    def io_parallel() -> int:
        # No model, no Pave: every row group read and written back as a part file with two added
        # columns, a part per thread on every core, with Pave's writer settings: the floor of any
        # path that writes the input's rows to a folder on this machine.
        out = folder / "floor"
        out.mkdir(exist_ok=True)
        codecs, required = input_codecs(source, "parquet"), null_free_columns(source, "parquet")

        def part(index: int) -> int:
            read = pq.ParquetFile(source, memory_map=True).read_row_group(index, use_threads=False)
            read = declared_required(_two_columns(read), required)
            pq.write_table(read, out / f"part-{index:06d}.parquet", **writer_options(read.schema, codecs))
            return int(read.num_rows)

        with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            return sum(pool.map(part, range(pq.ParquetFile(source).num_row_groups)))

    results = {}
    for name, work in (
        ("Pave, folder", pave(f"{folder / 'pave'}/")),
        ("Pave, one file", pave(str(folder / "pave.parquet"))),
        ("pyfunc", peer),
        ("compiled in-process", limit),
        ("I/O only", io_floor),
        ("I/O only, parallel", io_parallel),
    ):
        # One untimed run first, for every cell alike: imports, Pave's one download of the model
        # into its cache and the input's digest (remembered by the file's identity), the page cache.
        first = time.perf_counter()
        work()
        first = time.perf_counter() - first
        cpu = time.process_time()  # this process's threads (every cell runs in this process)
        seconds, done, runs = _repeat(work)
        cpu = time.process_time() - cpu
        results[name] = done / seconds
        print(f"  batch {name:>20}: first (untimed) run {first:.2f} s", flush=True)
        print(
            f"  batch {name:>20}: {done / seconds:>12,.0f} rows/s  ({runs} runs, {seconds:.1f} s; "
            f"{cpu / runs:.3f} CPU-s a run)",
            flush=True,
        )
    expected = pd.read_parquet(folder / "peer.parquet", columns=["predict"])["predict"].to_numpy()
    for output in (folder / "pave", folder / "pave.parquet"):  # the folder reads back in the input's order
        assert (pd.read_parquet(output, columns=["predict"])["predict"].to_numpy() == expected).all()
    return results


# --- tuning ----------------------------------------------------------------------------------------

STEPS = """
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def load(seed: int, rows: int) -> dict:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, 20)), columns=[f"f{i}" for i in range(20)])
    y = ((X["f0"] * X["f1"] + X["f2"]) > 0).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def train(split: dict, max_depth: int, n_estimators: int) -> float:
    model = RandomForestClassifier(max_depth=max_depth, n_estimators=n_estimators, random_state=0, n_jobs=1)
    model.fit(split["X_train"], split["y_train"])
    return float(model.score(split["X_test"], split["y_test"]))


def evaluate(accuracy: float) -> dict:
    return {"accuracy": accuracy}
"""

YAML = """
name: bench-tune
seed: 3
steps:
  - {{name: load, function: steps:load, params: {{seed: 3, rows: {rows}}}}}
  - name: train
    function: steps:train
    inputs: {{split: load}}
    params: {{max_depth: 4, n_estimators: 40}}
  - {{name: evaluate, function: steps:evaluate, inputs: {{accuracy: train}}}}
metrics: {{step: evaluate, primary: accuracy}}
tune:
  metric: accuracy
  trials: {trials}
  parallel: {parallel}
  pruner: none
  params:
    train.max_depth: {{type: int, low: 2, high: 12}}
    train.n_estimators: {{type: int, low: 20, high: 80}}
"""


def plain_optuna(trials: int, rows: int) -> float:
    import optuna

    sys.path.insert(0, str(_PROJECT))
    import steps  # the project's own module, the same functions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    split = steps.load(3, rows)

    def objective(trial: Any) -> float:
        accuracy = steps.train(
            split,
            trial.suggest_int("train.max_depth", 2, 12),
            trial.suggest_int("train.n_estimators", 20, 80),
        )
        return float(steps.evaluate(accuracy)["accuracy"])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started


_PROJECT = Path()


def pave_tune(
    folder: Path, trials: int, parallel: int, address: str | None, rows: int
) -> tuple[float, dict[str, float]]:
    """Seconds ``pave tune`` took, and its phases (seconds after its start when each was reached),
    with ``driver CPU`` (CPU-seconds of this process's threads meanwhile)."""
    from pave.config import Settings
    from pave.pipelines.tune import open_storage, tune_project

    name = f"p{parallel}-{secrets.token_hex(3)}"
    project = folder / name
    project.mkdir()
    (project / "steps.py").write_text(STEPS)
    (project / "pave.yaml").write_text(YAML.format(trials=trials, parallel=parallel, rows=rows))
    extra: dict[str, Any] = {"executor": "ray", "executor_address": address} if address else {}
    settings = Settings(home=folder / f"home-{name}", artifact_root=str(folder / "artifacts"), **extra)
    # The platform's databases exist before anyone tunes (`pave up` made them): not timed.
    open_storage(settings.tuning_db_url).engine.dispose()
    started, cpu = time.perf_counter(), time.process_time()
    result = tune_project(
        project, tracking_uri=f"sqlite:///{folder / 'tune.db'}", settings=settings, study=name, progress=False
    )
    assert len(result.trials) == trials
    return time.perf_counter() - started, result.phases | {"driver CPU": time.process_time() - cpu}


@contextlib.contextmanager
def ray_cluster() -> Iterator[str]:
    """A head and a worker node on this machine (two CPUs each), stopped by their own processes."""
    temp = Path(tempfile.mkdtemp(prefix="pbench-", dir="/tmp"))
    port, client_port = free_port(), free_port()
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus=2", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    # Ray Client's server gets a free port too: its default (10001) is taken by any other cluster.
    head = [ray, "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}"]
    head += ["--include-dashboard=false", f"--temp-dir={temp}/h"]
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_raylet_start_wait_time_s": "120"}
    worker = [ray, "start", f"--address=127.0.0.1:{port}", f"--temp-dir={temp}/w"]
    try:
        for command in ([*head, *common], [*worker, *common]):
            for attempt in (1, 2):  # a node can time out starting on a loaded machine: once more
                started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
                if started.returncode == 0:
                    break
                print(f"  ray start failed (attempt {attempt}): {started.stderr[-300:]}", flush=True)
                _stop(_cluster_processes(temp, client_port))  # what the failed start left of this cluster
            started.check_returncode()
        yield f"127.0.0.1:{port}"
    finally:
        _stop(_cluster_processes(temp, client_port))
        shutil.rmtree(temp, ignore_errors=True)


def _stop(pids: set[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2)


def _cluster_processes(temp: Path, client_port: int) -> set[int]:
    """This cluster's processes: those naming its temporary folder, its Ray Client server (which names
    neither: it is found by its port) and the children of both (the agents, the workers)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    client = f"--port={client_port} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            pid = int(entry.name)
            parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if str(temp).encode() in command or (b"ray.util.client.server" in command and client in command):
                found.add(pid)
    while more := {pid for pid, parent in parents.items() if parent in found and pid not in found}:
        found |= more
    return found


def tuning(folder: Path, objectives: dict[str, tuple[int, int]]) -> dict[str, dict[str, float]]:
    """Per objective (name: rows, trials): plain Optuna and ``pave tune`` parallel 1, then every
    objective with ``parallel: 4`` on one two-node cluster."""
    global _PROJECT
    _PROJECT = folder / "plain"
    _PROJECT.mkdir()
    (_PROJECT / "steps.py").write_text(STEPS)
    results: dict[str, dict[str, float]] = {name: {} for name in objectives}
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{folder / 'tune.db'}").search_experiments()  # the platform's, made once
    for name, (rows, trials) in objectives.items():
        print(f"  tune objective {name}: a forest on {rows:,} x 20 rows, {trials} trials", flush=True)
        results[name]["optuna"] = seconds = plain_optuna(trials, rows)
        print(f"  tune {name:>9} plain Optuna, 1 at a time: {seconds:6.1f} s", flush=True)
        results[name]["pave parallel 1"] = seconds = pave_tune(folder, trials, 1, None, rows)[0]
        print(f"  tune {name:>9} pave tune, parallel 1:     {seconds:6.1f} s", flush=True)
    # The small study three times: the cluster's first tuning (cold), the project's next (warm), and
    # once more after its pool was stopped (stopped: as after 10 idle minutes; not the first driver).
    cells = [
        ("small", "cold"),
        ("small", "warm"),
        ("small", "stopped"),
        *((name, "warm") for name in objectives if name != "small"),
    ]
    with ray_cluster() as address:
        for name, pool in cells:
            rows, trials = objectives[name]
            if pool == "stopped":
                _stop_pool(address)
            seconds, phases = pave_tune(folder, trials, 4, address, rows)
            results[name][f"pave parallel 4 (ray, {pool})"] = seconds
            cpu = phases.pop("driver CPU")
            print(
                f"  tune {name:>9} pave tune, parallel 4 Ray, {pool} pool: {seconds:6.1f} s "
                f"(driver {cpu:.2f} CPU-s)",
                flush=True,
            )
            print(f"  tune {name:>9}   phases (s after start): {_phases(phases)}", flush=True)
    rows, trials = objectives["small"]
    results["small"]["optuna again"] = seconds = plain_optuna(trials, rows)
    print(f"  tune {'small':>9} plain Optuna again, after the Ray cells: {seconds:6.1f} s", flush=True)
    return results


def _stop_pool(address: str) -> None:
    """Stop the project's pool workers (what ``pave down`` does) and wait until Ray lists none."""
    import ray

    from pave.integrations.ray_pool import NAMESPACE, PREFIX, stop_pool

    stop_pool(address)
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    try:
        while any(a["name"].startswith(PREFIX) for a in ray.util.list_named_actors(all_namespaces=True)):
            time.sleep(0.2)
    finally:
        ray.shutdown()


def _phases(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {at:.2f}" for name, at in sorted(phases.items(), key=lambda item: item[1]))


def _summary(name: str, tuned: dict[str, float], trials: int) -> None:
    per_trial = (tuned["pave parallel 1"] - tuned["optuna"]) / trials
    serial = tuned["pave parallel 1"] / tuned["optuna"]
    ideal = tuned["pave parallel 1"] / 2  # two cores: at most two trials really run at once
    wide = "; ".join(
        f"parallel 4 on the cluster, {pool} pool, {tuned[key] / tuned['optuna']:.2f}x"
        + (
            f" ({tuned[key] / tuned['optuna again']:.2f}x the run after the Ray cells)"
            if "optuna again" in tuned
            else ""
        )
        for pool in ("cold", "stopped", "warm")
        if (key := f"pave parallel 4 (ray, {pool})") in tuned
    )
    print(
        f"  tune {name}: pave tune parallel 1 takes {serial:.2f}x plain Optuna's wall time "
        f"({per_trial:.2f} s of overhead per trial); {wide} "
        f"(ideal on 2 cores, parallel 1 / 2: {ideal:.1f} s, {ideal / tuned['optuna']:.2f}x)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="Rows scored by the linear model.")
    parser.add_argument("--forest-rows", type=int, default=500_000, help="Rows scored by the forest.")
    parser.add_argument("--trials", type=int, default=24, help="Trials of the small objective.")
    parser.add_argument("--realistic-trials", type=int, default=12, help="Trials of the realistic one.")
    parser.add_argument("--spec-trials", type=int, default=40, help="Trials of the spec cell (0: none).")
    parser.add_argument("--only", choices=["batch", "tune"], default=None, help="Run one half.")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Ray reads its authentication mode and token when it is imported: set them first.
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
    print(f"load average before: {load_average()}  ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory(prefix="pave-bench-compute-") as tmp:
        folder = Path(tmp)
        if args.only != "tune":
            for kind, rows in (("linear", args.rows), ("forest", args.forest_rows)):
                scored = batch(folder, rows, kind)
                for cell in ("Pave, folder", "Pave, one file"):
                    print(
                        f"  batch ({kind}): {cell} {scored[cell] / scored['pyfunc']:.1f}x pyfunc; "
                        f"{scored[cell] / scored['compiled in-process']:.2f} of the in-process compiled "
                        f"limit, {scored[cell] / scored['I/O only']:.2f} of reading and writing alone, "
                        f"{scored[cell] / scored['I/O only, parallel']:.2f} of it on every core",
                        flush=True,
                    )
                floor = scored["I/O only, parallel"] / scored["pyfunc"]
                print(f"  batch ({kind}): reading and writing alone on every core: {floor:.1f}x pyfunc")
        if args.only == "batch":
            print(f"load average after: {load_average()}", flush=True)
            return
        objectives = {"small": (4_000, args.trials), "realistic": (20_000, args.realistic_trials)}
        if args.spec_trials:
            objectives["spec"] = (20_000, args.spec_trials)
        for name, tuned in tuning(folder, objectives).items():
            _summary(name, tuned, objectives[name][1])
    print(f"load average after: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
