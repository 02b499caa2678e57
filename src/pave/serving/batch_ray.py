"""Batch scoring on a Ray cluster: one Ray task per Parquet row group (``executor = "ray"``).

The job's process reads each row group's model columns and hands them to a task (through Ray's
object store); the task scores them with the model loaded once per Ray worker process, by the
same :func:`pave.serving.loading.load_model` as the gateway and the local workers, and sends back
only the columns it adds. The job's process reads the row group's other columns itself and writes
the parts in order, as the local path does. Tasks are spread over the nodes; at most two per CPU
of the cluster are in flight, so memory stays bounded by a few row groups. The workers reach the
model registry at the job's tracking URI (with its token, passed to the workers' environment).
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pave.serving.loading import LoadedModel, load_model

_MODELS: dict[str, LoadedModel] = {}  # in a Ray worker process: the models it loaded


def _score_on_worker(table: Any, model_uri: str, tracking_uri: str, version: str, source: str) -> Any:
    """On a Ray worker: the columns the model adds to ``table``, and the node that scored it."""
    import ray

    from pave.serving.batch_score import score_arrow

    model = _MODELS.get(model_uri)
    if model is None:
        cache = Path(tempfile.gettempdir()) / "pave-batch-models"
        model = _MODELS[model_uri] = load_model(model_uri, tracking_uri=tracking_uri, cache_dir=cache)
    scored = score_arrow(model, table, version, source)
    added = scored.select(list(range(table.num_columns, scored.num_columns)))
    return added, ray.get_runtime_context().get_node_id()


def score_parquet_on_ray(
    local: Path,
    model: LoadedModel,
    *,
    model_uri: str,
    tracking_uri: str,
    version: str,
    source: str,
    write: Callable[[Any], None],
    address: str | None,
    env: dict[str, str],
) -> list[str]:
    """Score every row group of ``local`` on the cluster at ``address``; ``write`` each part in order.

    Returns the ids of the Ray nodes that scored parts.

    Raises:
        InvalidInput: the model refused rows of a part (the task's own error, raised here).
        RayUnavailable: no cluster at ``address``.
    """
    import pyarrow.parquet as pq

    from pave.integrations.ray import RayExecutor

    parquet = pq.ParquetFile(local)
    present = set(parquet.schema_arrow.names)
    columns = [c.name for c in model.schema.columns if c.name in present]
    nodes: dict[str, None] = {}
    with (
        tempfile.TemporaryDirectory(prefix="pave-batch-ray-") as empty,
        RayExecutor(Path(empty), address, env=env),
    ):
        import ray  # initialised by the executor (its address, token and the workers' environment)

        remote = ray.remote(max_retries=1, num_cpus=1, scheduling_strategy="SPREAD")(_score_on_worker)
        window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending: deque[Any] = deque()
        count = parquet.num_row_groups

        def submit(index: int) -> None:
            table = parquet.read_row_group(index, columns=columns)
            pending.append(
                remote.remote(table, model_uri, tracking_uri, version, f"{source} row group {index}")
            )

        submitted = 0
        while submitted < min(count, window):
            submit(submitted)
            submitted += 1
        for index in range(count):
            try:
                added, node = ray.get(pending.popleft())
            except ray.exceptions.RayTaskError as exc:  # the model's refusal: raise it as it was
                for ref in pending:
                    ray.cancel(ref, force=True)
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, BaseException) else exc) from None
            nodes[node] = None
            if submitted < count:
                submit(submitted)
                submitted += 1
            table = parquet.read_row_group(index)
            for name in added.column_names:
                table = table.append_column(name, added.column(name))
            write(table)
    return list(nodes)
