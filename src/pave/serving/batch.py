"""Batch scoring: a registered model over a Parquet or CSV table, local or in object storage.

The same predict path as the gateway: :func:`pave.serving.loading.load_model` (native sklearn and
LightGBM, compiled where the gateway compiles, pyfunc otherwise), fed the table's columns bound to
the model's input schema by the rules the gateway applies to a request (a missing column, or one
of a type the model does not accept, is refused naming the column).

The input is read one row group (Parquet) or one chunk (CSV) at a time, so memory is bounded by a
part, not by the table; parts are scored by ``workers`` local processes (forked, each loading the
model once) and written in order. The output holds the input's columns, the prediction columns
(``predict``, ``predict_proba_<i>`` ...) and ``model_version``. It is written under a temporary
name and renamed (a folder) or committed (object storage) only when every row is scored, so a
failed job leaves no output that looks complete (reading, writing and publishing:
:mod:`pave.serving.batch_io`).

A job is recorded as an MLflow run in the project's experiment (tag ``pave.kind=batch``): model
version, input URI and its sha256 (the input's data version), output URI, rows, seconds,
CPU-seconds and peak memory.
"""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pave.errors import InvalidInput, NotFound
from pave.serving.batch_dataset import DatasetSink, input_codecs
from pave.serving.batch_io import (
    Sink,
    input_digest,
    is_local,
    local_input,
    open_sink,
    output_format,
    publish,
    staged_output,
    table_format,
)
from pave.serving.loading import LoadedModel, load_model
from pave.serving.protocol import datatype_of
from pave.serving.schema import Features, InputSchema, accepts

VERSION_COLUMN = "model_version"
CSV_CHUNK_ROWS = 65_536
PREDICT_ROWS = 16_384  # rows a native model predicts at once within a part
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


# --- binding a table to the model ------------------------------------------------------------------


def check_columns(schema: InputSchema, columns: dict[str, str], source: str) -> None:
    """Refuse a table that lacks a column the model needs, or has one of a type it does not take.

    Args:
        schema: the model's input schema.
        columns: the table's column name -> OIP datatype.
        source: the input, for the message.
    """
    if not schema.columns:
        raise InvalidInput(
            f"the model takes tensors ({', '.join(t.name for t in schema.tensors) or 'unnamed'}), "
            "not a table",
            hint="batch scoring reads tables: use a model whose signature has columns",
        )
    names = ", ".join(f"'{c.name}'" for c in schema.columns)
    for column in schema.columns:
        given = columns.get(column.name)
        if given is None:
            if column.required or column.dtype.kind != "f":
                raise InvalidInput(
                    f"{source}: column '{column.name}' is missing; the model takes {names}",
                    hint=f"add the column '{column.name}' to the input, "
                    "or score it with the version it was made for",
                )
            continue
        if not accepts(column.datatype, given):
            raise InvalidInput(
                f"{source}: column '{column.name}' holds {given}, the model expects {column.datatype}",
                hint=f"convert '{column.name}' to {column.datatype.lower()} values in the input",
            )


def bind_frame(schema: InputSchema, frame: pd.DataFrame, source: str) -> Features:
    """The model input for the rows of ``frame`` (the gateway's binding, for a table)."""
    check_columns(schema, {str(c): datatype_of(frame[c].to_numpy()[:0]) for c in frame.columns}, source)
    n_rows = len(frame)
    given = {
        c.name: frame[c.name].to_numpy()
        if c.name in frame.columns
        else np.full(n_rows, np.nan, dtype=c.dtype)
        for c in schema.columns
    }
    if schema.kind == "matrix":
        return _matrix([given[name] for name in schema.order], n_rows, schema.matrix_dtype)
    return pd.DataFrame({c.name: given[c.name].astype(c.dtype, copy=False) for c in schema.columns})


def _matrix(columns: list[Any], n_rows: int, dtype: Any) -> np.ndarray:
    """The columns as one C-ordered ``(n_rows, len(columns))`` matrix, as the gateway builds it.

    Filled row by row of its transpose, then transposed in one copy: writing a column of a
    C-ordered matrix strides through memory (eight bytes per cache line), ten times slower.
    """
    return _columns_matrix(columns, n_rows, dtype).copy()


def _columns_matrix(columns: list[Any], n_rows: int, dtype: Any) -> np.ndarray:
    """The columns as one ``(n_rows, len(columns))`` matrix in Fortran order (a column after the
    other): each column one contiguous copy, no transposition. The same values as :func:`_matrix`;
    numpy and scikit-learn take either order (a model that needs C order converts it itself, as
    the compiled trees do on their way to float32)."""
    transposed = np.empty((len(columns), n_rows), dtype=dtype)
    for j, values in enumerate(columns):
        transposed[j] = values
    return transposed.T


def score_frame(model: LoadedModel, frame: pd.DataFrame, version: str, source: str) -> pd.DataFrame:
    """``frame`` with the prediction columns and ``model_version`` added."""
    features = bind_frame(model.schema, frame, source)
    try:
        outputs = model.predict(features)
    except Exception as exc:  # the model's own refusal of these rows (NaN, a value out of range)
        raise InvalidInput(
            f"{source}: the model failed on these rows: {type(exc).__name__}: {str(exc)[:300]}",
            hint="fix the rows (missing values, out-of-range values), then run the job again",
        ) from exc
    scored = frame.copy()
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2:
            for i in range(array.shape[1]):
                scored[f"{name}_{i}"] = array[:, i]
        else:
            scored[name] = array.reshape(len(frame), -1)[:, 0] if array.ndim > 1 else array
    scored[VERSION_COLUMN] = version
    return scored


# --- reading parts ---------------------------------------------------------------------------------


def _parquet_columns(path: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    out = {}
    for name in schema.names:
        empty = schema.empty_table().column(name).to_pandas().to_numpy()
        out[name] = datatype_of(empty)
    return out


# --- scoring Arrow tables -------------------------------------------------------------------------


def score_arrow(model: LoadedModel, table: Any, version: str, source: str) -> Any:
    """``table`` (a ``pyarrow.Table``) with the prediction columns and ``model_version`` appended.

    A matrix model gets its columns straight from Arrow (no DataFrame of the whole part); others
    go through :func:`score_frame`.
    """
    import pyarrow as pa

    if model.schema.kind != "matrix":
        return pa.Table.from_pandas(
            score_frame(model, table.to_pandas(), version, source), preserve_index=False
        )
    matrix = _arrow_matrix(model.schema, table)
    pieces = [
        _predict_slice(model, matrix, start, stop, source) for start, stop in _slices(model, table.num_rows)
    ]
    return with_outputs(table, _joined(pieces), version)


def _arrow_matrix(schema: InputSchema, table: Any) -> np.ndarray:
    names = set(table.column_names)
    # an optional float column left out: missing values, as the gateway fills them
    columns = [table.column(n).to_numpy(zero_copy_only=False) if n in names else np.nan for n in schema.order]
    return _columns_matrix(columns, table.num_rows, schema.matrix_dtype)


def with_outputs(table: Any, outputs: dict[str, np.ndarray], version: str) -> Any:
    """``table`` with the model's outputs (``predict``, ``predict_proba_<i>`` ...) and
    ``model_version`` appended."""
    import pyarrow as pa

    n_rows = table.num_rows
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2:
            for i in range(array.shape[1]):
                table = table.append_column(f"{name}_{i}", pa.array(array[:, i]))
        else:
            table = table.append_column(
                name, pa.array(array.reshape(n_rows, -1)[:, 0] if array.ndim > 1 else array)
            )
    indices = pa.array(np.zeros(n_rows, dtype=np.int32))
    return table.append_column(VERSION_COLUMN, pa.DictionaryArray.from_arrays(indices, pa.array([version])))


def _slices(model: LoadedModel, n_rows: int) -> list[tuple[int, int]]:
    """The rows predicted at once: :data:`PREDICT_ROWS` at a time when every output has a row per
    input row. The model's temporaries (a scaled copy of the rows, scores) then stay in the CPU's
    cache and in reused memory, where a whole part's would be fresh pages the kernel zeroes first
    (a quarter of the job's CPU time for the linear model); and the slices of one part can be
    predicted on several threads."""
    step = PREDICT_ROWS if model.batchable else max(n_rows, 1)
    return [(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


def _predict_slice(model: LoadedModel, matrix: np.ndarray, start: int, stop: int, source: str) -> Any:
    try:
        return model.predict(matrix[start:stop])
    except Exception as exc:  # the model's own refusal of these rows (NaN, a value out of range)
        raise InvalidInput(
            f"{source}: the model failed on these rows: {type(exc).__name__}: {str(exc)[:300]}",
            hint="fix the rows (missing values, out-of-range values), then run the job again",
        ) from exc


def _joined(pieces: list[Any]) -> dict[str, np.ndarray]:
    if len(pieces) == 1:
        return dict(pieces[0])
    return {name: np.concatenate([np.asarray(piece[name]) for piece in pieces]) for name in pieces[0]}


# --- workers (forked processes; they inherit the model the job loaded) -----------------------------

_WORKER: dict[str, Any] = {}


def _predict_part(path: str, index: int, source: str) -> Any:
    """In a worker: only the columns the model adds, from only the columns it reads (the parent
    reads the input columns itself, so a part crosses the process boundary as a few columns)."""
    import pyarrow.parquet as pq

    model = _WORKER["model"]
    parquet = pq.ParquetFile(path)
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
    resolved = _version(project, version, alias, tracking_uri)
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
        model = load_model(uri, tracking_uri=tracking_uri, cache_dir=cache_dir)
        with (
            open_sink(staged, out_kind) as sink,
            _monitoring(monitor_dir, project, resolved, model, local) as tap,
        ):
            sink.tap, sink.codecs = tap, input_codecs(local, in_kind)
            if in_kind == "parquet":
                check_columns(model.schema, _parquet_columns(local), input_uri)
                if ray:
                    nodes = _score_on_ray(
                        local, model, uri, tracking_uri, resolved, input_uri, sink, ray_address, progress
                    )
                else:
                    _score_parquet(local, model, resolved, workers, input_uri, sink, progress)
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


def _version(project: str, version: str | None, alias: str | None, tracking_uri: str) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if version and alias:
        raise InvalidInput("give --version or --alias, not both", hint="e.g. --alias champion")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if version:
            return str(client.get_model_version(project, version).version)
        if alias:
            return str(client.get_model_version_by_alias(project, alias).version)
        try:
            return str(client.get_model_version_by_alias(project, "champion").version)
        except MlflowException:
            found = client.search_model_versions(f"name = '{project}'", max_results=1000)
            if not found:
                raise
            return str(max(int(v.version) for v in found))
    except MlflowException as exc:
        which = f"version {version}" if version else f"alias {alias or 'champion'}"
        raise NotFound(
            f"project {project} has no model {which}",
            hint=f"see `pave models {project}`; pass --version N or --alias NAME",
        ) from exc


def _score_parquet(
    local: Path,
    model: LoadedModel,
    version: str,
    workers: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    import pyarrow.parquet as pq

    count = pq.ParquetFile(local).num_row_groups
    if workers <= 1 or count <= 1:
        parquet = pq.ParquetFile(local)
        for index in range(count):
            table = parquet.read_row_group(index)
            sink.write(score_arrow(model, table, version, f"{source} row group {index}"))
            if progress:
                progress(sink.rows, sink.parts)
        return
    if model.flavor == "pyfunc" and model.environment is None:
        _score_in_processes(local, model, version, workers, count, source, sink, progress)
    else:
        _score_in_threads(local, model, version, workers, count, source, sink, progress)


def _score_in_threads(
    local: Path,
    model: LoadedModel,
    version: str,
    workers: int,
    count: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Native models (scikit-learn, LightGBM, compiled): threads, one part each at a time.

    Reading Parquet, numpy's arithmetic and the trees' own predict run without the GIL, so threads
    score parts in parallel with no process start, no copy of a part between processes and no
    second read of its columns. One output file is written by this thread in order (Parquet
    encoding also runs without the GIL) while the next parts are read and scored; a folder's part
    files are written by the workers too, at most one per worker waiting.
    """
    import threading

    import pyarrow.parquet as pq

    local_files = threading.local()  # a reader per thread: one Parquet reader is not shared
    matrix_kind = model.schema.kind == "matrix"

    def read(index: int) -> tuple[Any, list[Future[Any]]]:
        """Part ``index``: scored (a DataFrame model), or read with its slices queued to predict."""
        parquet = getattr(local_files, "parquet", None)
        if parquet is None:
            parquet = local_files.parquet = pq.ParquetFile(local)
        # one thread per part: Arrow's own threads for the columns of a part would only add
        # hand-overs (a fifth more CPU time here for the same parts)
        table = parquet.read_row_group(index, use_threads=False)
        where = f"{source} row group {index}"
        if not matrix_kind:
            return score_arrow(model, table, version, where), []
        matrix = _arrow_matrix(model.schema, table)
        slices = _slices(model, table.num_rows)
        return table, [pool.submit(_predict_slice, model, matrix, a, b, where) for a, b in slices]

    from threadpoolctl import threadpool_limits

    # The parts are the parallelism: BLAS's and OpenMP's own threads on top of them would spin
    # for work on the same cores (a sixth of the job's CPU time, OpenBLAS's waiting threads).
    with (
        threadpool_limits(1),
        ThreadPoolExecutor(min(workers, count), thread_name_prefix="pave-batch") as pool,
    ):
        # At most two parts per worker in flight: bounded memory. A part's slices are queued when
        # it is read, so all workers predict even when fewer parts than workers are left.
        pending = deque(pool.submit(read, i) for i in range(min(count, 2 * workers)))
        writes: deque[Future[None] | None] = deque()
        submitted = len(pending)
        try:
            while pending or writes:
                if pending:
                    table, slices = pending.popleft().result()  # in order; the first error ends the job
                    if slices:
                        table = with_outputs(table, _joined([f.result() for f in slices]), version)
                    if submitted < count:
                        pending.append(pool.submit(read, submitted))
                        submitted += 1
                    writes.append(sink.submit(table, pool))
                if len(writes) > (workers if pending else 0) and (written := writes.popleft()):
                    written.result()
                if progress:
                    progress(sink.rows, sink.parts)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _score_in_processes(
    local: Path,
    model: LoadedModel,
    version: str,
    workers: int,
    count: int,
    source: str,
    sink: Sink | DatasetSink,
    progress: Callable[[int, int], None] | None,
) -> None:
    """A pyfunc model (Python code that may hold the GIL): forked processes that inherit it."""
    import pyarrow.parquet as pq

    _WORKER.update(model=model, version=version)  # forked workers inherit it: loaded once
    try:
        # At most two parts per worker in flight: bounded memory.
        parquet = pq.ParquetFile(local)
        with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=get_context("fork")) as pool:
            pending = [
                pool.submit(_predict_part, str(local), i, source) for i in range(min(count, 2 * workers))
            ]
            submitted, index = len(pending), 0
            while pending:
                added = pending.pop(0).result()  # in order; the first error ends the job
                if submitted < count:
                    pending.append(pool.submit(_predict_part, str(local), submitted, source))
                    submitted += 1
                table = parquet.read_row_group(index)
                for name in added.column_names:
                    table = table.append_column(name, added.column(name))
                sink.write(table)
                index += 1
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

    for index, chunk in enumerate(pd.read_csv(local, chunksize=CSV_CHUNK_ROWS)):
        first = index * CSV_CHUNK_ROWS + 2  # the file's line of the chunk's first row (after the header)
        where = f"{source} (rows from line {first})"
        frame = chunk.reset_index(drop=True)
        check_columns(
            model.schema, {str(c): datatype_of(frame[c].to_numpy()[:0]) for c in frame.columns}, where
        )
        sink.write(score_arrow(model, pa.Table.from_pandas(frame, preserve_index=False), version, where))
        if progress:
            progress(sink.rows, sink.parts)


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
    given = set(pq.read_schema(local).names if parquet else pd.read_csv(local, nrows=0).columns)
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
