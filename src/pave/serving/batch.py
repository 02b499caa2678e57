"""Batch scoring: a registered model over a Parquet or CSV table, local or in object storage.

The same predict path as the gateway: :func:`pave.serving.loading.load_model` (native sklearn and
LightGBM, compiled where the gateway compiles, pyfunc otherwise), fed the table's columns bound to
the model's input schema by the rules the gateway applies to a request (a missing column, or one
of a type the model does not accept, is refused naming the column): binding and predicting a
part, :mod:`pave.serving.batch_score`.

The input is read one row group (Parquet) or one chunk (CSV) at a time, so memory is bounded by a
few parts, not by the table; parts are scored by ``workers`` threads (a native model) or forked
processes (a pyfunc model, each inheriting the loaded model) and written in order. The output
holds the input's columns, the prediction columns (``predict``, ``predict_proba_<i>`` ...) and
``model_version``. It is written under a temporary name and renamed (a folder) or committed
(object storage) only when every row is scored, so a failed job leaves no output that looks
complete (reading, writing and publishing: :mod:`pave.serving.batch_io`).

A job is recorded as an MLflow run in the project's experiment (tag ``pave.kind=batch``): model
version, input URI and its sha256 (the input's data version), output URI, rows, seconds,
CPU-seconds and peak memory.
"""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pave.errors import InvalidInput, NotFound
from pave.serving.batch_dataset import DatasetSink, input_codecs, null_free_columns
from pave.serving.batch_io import (
    Sink,
    input_digest,
    is_local,
    local_input,
    open_sink,
    output_format,
    publish,
    read_csv,
    refuse_overwriting_input,
    staged_output,
    table_format,
)
from pave.serving.batch_score import (
    VERSION_COLUMN,
    Matrices,
    arrow_columns,
    check_columns,
    frame_columns,
    joined,
    predict_rows,
    refuse_text_in_numbers,
    score_arrow,
    slices,
    with_outputs,
)
from pave.serving.loading import LoadedModel, load_model
from pave.serving.protocol import datatype_of

__all__ = ["VERSION_COLUMN", "BatchResult", "list_jobs", "record_job", "score_arrow", "score_table"]

CSV_CHUNK_ROWS = 65_536
TAG_KIND = "pave.kind"
DIGESTS = "input-digests"  # under the cache folder: the digests of local inputs


@dataclass
class BatchResult:
    """What one batch job did."""

    project: str
    model_version: str
    input: str
    output: str
    input_sha256: str
    rows: int
    parts: int
    seconds: float
    cpu_seconds: float
    peak_memory: int
    workers: int
    run_id: str | None = None
    columns: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)  # the Ray nodes that scored parts (executor ray)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rows_per_second": self.rows_per_second}


# --- reading parts ---------------------------------------------------------------------------------


def _parquet_columns(path: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    # One empty frame for every column (a frame per column took twice the time); the file's pandas
    # metadata ignored, as a column's own conversion does (an index stays a column).
    empty = schema.empty_table().to_pandas(ignore_metadata=True)
    return {name: datatype_of(empty.iloc[:, i].to_numpy()) for i, name in enumerate(schema.names)}


# --- workers (forked processes; they inherit the model the job loaded) -----------------------------

_WORKER: dict[str, Any] = {}


def _predict_part(path: str, index: int, source: str) -> Any:
    """In a worker: only the columns the model adds, from only the columns it reads (the parent
    reads the input columns itself, so a part crosses the process boundary as a few columns)."""

    model = _WORKER["model"]
    parquet = _open_parquet(Path(path))
    present = set(parquet.schema_arrow.names)
    table = parquet.read_row_group(index, columns=[c.name for c in model.schema.columns if c.name in present])
    scored = score_arrow(model, table, _WORKER["version"], f"{source} row group {index}")
    return scored.select(list(range(table.num_columns, scored.num_columns)))


def _usage() -> tuple[float, int]:
    """CPU-seconds of this process and its waited-for children; peak memory of the largest."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, max(own.ru_maxrss, children.ru_maxrss) * 1024


# --- the job ---------------------------------------------------------------------------------------


def score_table(
    project: str,
    *,
    input_uri: str,
    output_uri: str,
    tracking_uri: str,
    cache_dir: Path,
    version: str | None = None,
    alias: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    monitor_dir: Path | None = None,
    ray_address: str | None = None,
    ray: bool = False,
) -> BatchResult:
    """Score the table at ``input_uri`` with a version of ``project``'s model into ``output_uri``.

    Args:
        project: the project (its registered model has the same name).
        input_uri, output_uri: a path or ``s3://BUCKET/KEY``, ``.parquet`` or ``.csv``; an output
            ending with ``/`` is a folder of Parquet part files (``pave.serving.batch_dataset``).
        tracking_uri: MLflow (the model registry, and where the job is recorded).
        cache_dir: where downloaded models are kept.
        version, alias: which version (default: alias ``champion``, else the newest version).
        workers: processes scoring parts at once (default: the CPUs this process may use).
        progress: called with (rows done, parts done) after each part.
        monitor_dir: an inference log folder: a sample of the scored rows is logged there as
            records of the deployment named after the project (``pave.serving.batch_monitor``).
        ray, ray_address: score Parquet row groups as Ray tasks on the cluster at ``ray_address``
            (``pave.serving.batch_ray``) instead of local processes.

    Raises:
        InvalidInput: an unknown format, a missing column or one of the wrong type (named); nothing
            is written then.
        NotFound: no such input, model or version.
    """
    started = time.perf_counter()
    cpu_before, _ = _usage()
    in_kind, out_kind = table_format(input_uri), output_format(output_uri)
    refuse_overwriting_input(input_uri, output_uri)
    resolved, location = _version(project, version, alias, tracking_uri)
    uri = f"models:/{project}/{resolved}"
    workers = workers or len(os.sched_getaffinity(0))
    nodes: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="pave-batch-") as tmp,
        ThreadPoolExecutor(1) as hasher,
        local_input(input_uri, Path(tmp)) as local,
        staged_output(output_uri, out_kind, Path(tmp)) as staged,
    ):
        # the input's data version, while it is scored (remembered for a local file: see input_digest)
        remembered = cache_dir / DIGESTS if is_local(input_uri) else None
        digest = hasher.submit(input_digest, local, remembered)
        # the first row groups are read while the model loads (every path but Ray's reads them all)
        reader = Parts(local, workers) if in_kind == "parquet" and not ray else None
        with reader or contextlib.nullcontext(), open_sink(staged, out_kind) as sink:
            model = load_model(uri, tracking_uri=tracking_uri, cache_dir=cache_dir, location=location)
            with _monitoring(monitor_dir, project, resolved, model, local) as tap:
                sink.tap, sink.codecs = tap, input_codecs(local, in_kind)
                sink.required = null_free_columns(local, in_kind)
                if in_kind == "parquet":
                    check_columns(model.schema, _parquet_columns(local), input_uri)
                if reader is not None:
                    _score_parquet(reader, model, resolved, workers, input_uri, sink, progress)
                elif ray:
                    nodes = _score_on_ray(
                        local, model, uri, tracking_uri, resolved, input_uri, sink, ray_address, progress
                    )
                else:
                    _score_csv(local, model, resolved, input_uri, sink, progress)
                sink.close()
                manifest = sink.manifest(model_version=resolved) if isinstance(sink, DatasetSink) else None
                publish(staged, output_uri, manifest)
        input_sha256 = digest.result()
    rows, columns, parts = sink.rows, sink.columns, sink.parts
    cpu_after, peak = _usage()
    return BatchResult(
        project=project,
        model_version=resolved,
        input=input_uri,
        output=output_uri,
        input_sha256=input_sha256,
        rows=rows,
        parts=parts,
        seconds=time.perf_counter() - started,
        cpu_seconds=cpu_after - cpu_before,
        peak_memory=peak,
        workers=workers,
        columns=columns,
        nodes=nodes,
    )


def _version(project: str, version: str | None, alias: str | None, tracking_uri: str) -> tuple[str, str]:
    """The version to score with and where the registry keeps its artifacts (for ``load_model``:
    the registry is asked once per question, not again by the loader)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if version and alias:
        raise InvalidInput("give --version or --alias, not both", hint="e.g. --alias champion")
    if version and not version.strip().isdigit():
        raise InvalidInput(f"--version {version} is not a version number", hint="e.g. --version 3")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if version:
            resolved = str(int(version))
        elif alias:
            resolved = str(client.get_model_version_by_alias(project, alias).version)
        else:
            try:
                resolved = str(client.get_model_version_by_alias(project, "champion").version)
            except MlflowException:
                found = client.search_model_versions(f"name = '{project}'", max_results=1000)
                if not found:
                    raise
                resolved = str(max(int(v.version) for v in found))
        return resolved, str(client.get_model_version_download_uri(project, resolved))
    except MlflowException as exc:
        try:
            client.get_registered_model(project)
        except MlflowException:
            raise NotFound(
                f"no model is registered as {project!r}: no such project, or it has not registered one",
                hint="`pave projects` lists the projects; `pave run` in its folder registers its model",
            ) from exc
        which = f"version {version}" if version else f"alias {alias or 'champion'}"
        raise NotFound(
            f"project {project} has no model {which}",
            hint=f"see `pave models {project}`; pass --version N or --alias NAME",
        ) from exc


def _open_parquet(local: Path) -> Any:
    """A reader of the local Parquet input, memory-mapped: its pages are decompressed and decoded
    straight from the page cache (no copy of the file into the process first)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(local, memory_map=True)


class Parts:
    """The row groups of a local Parquet input, the first ones read ahead while the model loads.

    The first ``2 x workers`` are read on the job's threads as soon as the job starts; :meth:`read`
    hands over such a part once read, and reads any later one in the calling thread (a job's
    thread reads a part and queues its slices in one task: no thread waits for another's read).
    The same threads predict the parts' slices and write the part files (:func:`_score_in_threads`).
    Each thread has its reader (one Parquet reader is not shared) and reads a part's columns
    itself: Arrow's own threads for the columns of a part would only add hand-overs (a fifth more
    CPU time for the same parts, measured).
    """

    def __init__(self, local: Path, workers: int) -> None:
        self.local = local
        self.count = _open_parquet(local).num_row_groups
        self.pool = ThreadPoolExecutor(max(1, min(workers, self.count)), thread_name_prefix="pave-batch")
        self._readers = threading.local()
        self._ahead = {i: self.pool.submit(self._read, i) for i in range(min(self.count, 2 * workers))}

    def _read(self, index: int) -> Any:
        parquet = getattr(self._readers, "parquet", None)
        if parquet is None:
            parquet = self._readers.parquet = _open_parquet(self.local)
        return parquet.read_row_group(index, use_threads=False)

    def settle(self) -> None:
        """Wait until the reads under way are done (their errors are raised by :meth:`read`)."""
        wait(list(self._ahead.values()))

    def read(self, index: int) -> Any:
        """Part ``index``'s table: read ahead, or read now in this thread."""
        ahead = self._ahead.pop(index, None)
        return ahead.result() if ahead is not None else self._read(index)

    def close(self) -> None:
        """Stop the threads: queued work is dropped, running work finishes (idempotent)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _score_parquet(
    parts: Parts,
    model: LoadedModel,
    version: str,
    workers: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    if workers > 1 and parts.count > 1:
        if model.flavor == "pyfunc" and model.environment is None:
            _score_in_processes(parts, model, version, workers, source, sink, progress)
        else:
            _score_in_threads(parts, model, version, workers, source, sink, progress)
        return
    matrices = Matrices(model.schema)
    for index in range(parts.count):
        table = parts.read(index)
        sink.write(score_arrow(model, table, version, f"{source} row group {index}", matrices))
        if progress:
            progress(sink.rows, sink.parts)


def _score_in_threads(
    parts: Parts,
    model: LoadedModel,
    version: str,
    workers: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Native models (scikit-learn, LightGBM, compiled): the parts on the job's threads.

    Reading Parquet, numpy's arithmetic and the trees' own predict run without the GIL, so threads
    score parts in parallel with no process start, no copy of a part between processes and no
    second read of its columns. A part is scored as soon as it is read: a matrix model's slices are
    queued then and predicted on any thread, each through the thread's own matrix buffer
    (``pave.serving.batch_score``), so all threads predict even when fewer parts than threads are
    left; a DataFrame model's part is scored whole on one thread. One output file is written by
    this thread in order (Parquet encoding also runs without the GIL) while the next parts are
    read and scored; a folder's part files are written by the threads too, at most one per thread
    waiting. At most two parts per thread are read ahead: bounded memory.
    """
    pool, matrices = parts.pool, Matrices(model.schema)

    def score(index: int) -> tuple[Any, list[Future[dict[str, np.ndarray]]]]:
        """Part ``index`` read: scored (a DataFrame model), or with its slices queued to predict."""
        table, where = parts.read(index), f"{source} row group {index}"
        if model.schema.kind != "matrix":
            return score_arrow(model, table, version, where), []
        columns = arrow_columns(model.schema, table)  # views of the table's buffers: it is kept
        predicted = [
            pool.submit(predict_rows, model, columns, a, b, where, matrices)
            for a, b in slices(model, table.num_rows)
        ]
        return table, predicted

    from threadpoolctl import threadpool_limits

    # The parts are the parallelism: BLAS's and OpenMP's own threads on top of them would spin
    # for work on the same cores (a sixth of the job's CPU time, OpenBLAS's waiting threads).
    with threadpool_limits(1):
        # A part's scoring is queued behind its read ahead, if it was (a thread that takes it finds
        # the read taken already: the pool's queue is first in, first out).
        pending = deque(pool.submit(score, i) for i in range(min(parts.count, 2 * workers)))
        writes: deque[Future[None] | None] = deque()
        submitted = len(pending)
        try:
            while pending or writes:
                if pending:
                    table, predicted = pending.popleft().result()  # in order; the first error ends the job
                    if predicted:
                        table = with_outputs(table, joined([f.result() for f in predicted]), version)
                    if submitted < parts.count:
                        pending.append(pool.submit(score, submitted))
                        submitted += 1
                    writes.append(sink.submit(table, pool))
                if len(writes) > (workers if pending else 0) and (written := writes.popleft()):
                    written.result()
                if progress:
                    progress(sink.rows, sink.parts)
        except BaseException:
            parts.close()  # no thread writes to the output any more once the job fails
            raise


def _score_in_processes(
    parts: Parts,
    model: LoadedModel,
    version: str,
    workers: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    """A pyfunc model (Python code that may hold the GIL): forked processes that inherit it; the
    input's columns are read here, on the job's threads, and the added columns appended."""
    _WORKER.update(model=model, version=version)  # forked workers inherit it: loaded once
    parts.settle()  # no thread of this process is inside Arrow when the workers are forked
    local, count = str(parts.local), parts.count
    try:
        # At most two parts per worker in flight: bounded memory.
        with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=get_context("fork")) as pool:
            pending = [pool.submit(_predict_part, local, i, source) for i in range(min(count, 2 * workers))]
            submitted = len(pending)
            for index in range(count):
                added = pending.pop(0).result()  # in order; the first error ends the job
                if submitted < count:
                    pending.append(pool.submit(_predict_part, local, submitted, source))
                    submitted += 1
                table = parts.read(index)
                for name in added.column_names:
                    table = table.append_column(name, added.column(name))
                sink.write(table)
                if progress:
                    progress(sink.rows, sink.parts)
    finally:
        _WORKER.clear()


def _score_on_ray(
    local: Path,
    model: LoadedModel,
    uri: str,
    tracking_uri: str,
    version: str,
    source: str,
    sink: Sink | DatasetSink,
    address: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[str]:
    from pave.serving.batch_ray import score_parquet_on_ray

    def write(table: Any) -> None:
        sink.write(table)
        if progress:
            progress(sink.rows, sink.parts)

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return score_parquet_on_ray(
        local,
        model,
        model_uri=uri,
        tracking_uri=tracking_uri,
        version=version,
        source=source,
        write=write,
        address=address,
        env={"MLFLOW_TRACKING_TOKEN": token} if token else {},
    )


def _score_csv(
    local: Path,
    model: LoadedModel,
    version: str,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    import pyarrow as pa

    for index, chunk in enumerate(read_csv(local, chunksize=CSV_CHUNK_ROWS)):
        first = index * CSV_CHUNK_ROWS + 2  # the file's line of the chunk's first row (after the header)
        where = f"{source} (rows from line {first})"
        frame = chunk.reset_index(drop=True)
        if frame.empty:  # a header and no rows: nothing to score (its columns' types are unknown)
            continue
        refuse_text_in_numbers(model.schema, frame, first, where)
        check_columns(model.schema, frame_columns(frame), where)
        try:
            scored = score_arrow(model, pa.Table.from_pandas(frame, preserve_index=False), version, where)
        except InvalidInput as exc:
            raise _with_first_missing(exc, model, frame, first, where) from exc.__cause__
        sink.write(scored)
        if progress:
            progress(sink.rows, sink.parts)


def _with_first_missing(
    error: InvalidInput, model: LoadedModel, frame: pd.DataFrame, first: int, where: str
) -> InvalidInput:
    """The model's refusal of a CSV part, naming the line and column of its first missing value (an
    empty cell) when the part has one: what a model that takes no NaN refuses, and what to fix."""
    columns = [c.name for c in model.schema.columns if c.name in frame.columns]
    missing = frame[columns].isna().to_numpy()
    if not missing.any():
        return error
    row, column = divmod(int(missing.argmax()), len(columns))
    said = str(error.__cause__ or error.message).strip().splitlines()[0][:200]
    return InvalidInput(
        f"{where}: line {first + row}, column '{columns[column]}' is empty, and the model failed on "
        f"the missing value ({type(error.__cause__).__name__}: {said})",
        hint="fill or drop the rows with empty cells (or train a model that takes missing values)",
    )


@contextlib.contextmanager
def _monitoring(
    directory: Path | None, project: str, version: str, model: LoadedModel, local: Path
) -> Iterator[Callable[[Any], None] | None]:
    """A tap feeding each written part to the inference log (``--monitor``), published on success."""
    if directory is None:
        yield None
        return
    import pyarrow.parquet as pq

    from pave.serving.batch_monitor import BatchLog

    parquet = table_format(str(local)) == "parquet"
    given = set(pq.read_schema(local).names if parquet else read_csv(local, nrows=0).columns)
    log = BatchLog(
        directory,
        deployment=project,
        version=version,
        inputs=[c.name for c in model.schema.columns],
        total_rows=pq.ParquetFile(local).metadata.num_rows if parquet else None,
    )

    def tap(table: Any) -> None:
        log.add(table, [c for c in table.column_names if c not in given and c != VERSION_COLUMN])

    try:
        yield tap
    except BaseException:
        log.discard()
        raise
    log.publish()


# --- recording the job -----------------------------------------------------------------------------


def record_job(result: BatchResult, *, tracking_uri: str) -> str:
    """Record the job as an MLflow run in the project's experiment; returns its id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(result.project)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(result.project, tags={"pave.project": result.project})
    )
    run = client.create_run(
        experiment_id,
        run_name=f"batch v{result.model_version}",
        tags={
            TAG_KIND: "batch",
            "pave.project": result.project,
            "pave.model.name": result.project,
            "pave.model.version": result.model_version,
            "pave.data.input": result.input_sha256,
            "pave.batch.input": result.input,
            "pave.batch.output": result.output,
        },
    )
    run_id = run.info.run_id
    for key, value in (
        ("rows", result.rows),
        ("seconds", result.seconds),
        ("rows_per_second", result.rows_per_second),
        ("pave.cpu_seconds", result.cpu_seconds),
        ("pave.peak_memory", result.peak_memory),
    ):
        client.log_metric(run_id, key, float(value))
    client.log_param(run_id, "workers", result.workers)
    client.set_terminated(run_id, "FINISHED")
    result.run_id = run_id
    return str(run_id)


def list_jobs(project: str, *, tracking_uri: str, limit: int = 50) -> list[dict[str, Any]]:
    """The project's batch jobs, newest first, from their MLflow runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(project)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_KIND}` = 'batch'",
        order_by=["start_time DESC"],
        max_results=limit,
    )
    return [
        {
            "run_id": run.info.run_id,
            "status": run.info.status,
            "started": run.info.start_time,
            "model_version": run.data.tags.get("pave.model.version"),
            "input": run.data.tags.get("pave.batch.input"),
            "input_sha256": run.data.tags.get("pave.data.input"),
            "output": run.data.tags.get("pave.batch.output"),
            "rows": run.data.metrics.get("rows"),
            "rows_per_second": run.data.metrics.get("rows_per_second"),
            "cpu_seconds": run.data.metrics.get("pave.cpu_seconds"),
        }
        for run in runs
    ]
