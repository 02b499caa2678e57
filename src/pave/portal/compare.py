"""Run comparison: the metrics and parameters of chosen runs of one project, side by side.

The project page's runs table has a checkbox per run; its form asks for
``/projects/NAME/compare?run=ID&run=ID...``. The page is allowed to whoever may list the project's
runs through the API (the same rule), and it shows only runs of that project's experiment: a run
id of another project is refused as not found, whatever the caller's roles elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response

from pave.config import Settings
from pave.errors import InvalidInput, NotFound
from pave.portal import charts, views
from pave.portal.web import mirror, page, platform_of, render, router, run
from pave.tracking.lineage import RunSummary, run_summary

MOST = 8  # runs on one page: beyond that a table of columns stops being readable
RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Row:
    """One metric or parameter: its value in each run (None: the run has none), and whether they differ."""

    name: str
    values: list[Any]
    differs: bool = field(init=False)

    def __post_init__(self) -> None:
        self.differs = len({repr(v) for v in self.values}) > 1


@dataclass
class Comparison:
    runs: list[RunSummary]
    metrics: list[Row]
    params: list[Row]
    metric: str  # the metric charted: the one asked for when the runs have it, else the first
    histories: dict[str, list[tuple[float, float]]]  # run id -> (step, value) of that metric


def chosen_runs(ids: list[str]) -> list[str]:
    """The run ids asked for, each once, in order.

    Raises:
        InvalidInput: fewer than two, more than :data:`MOST`, or one that is not a run id.
    """
    found = list(dict.fromkeys(i.strip().lower() for i in ids if i.strip()))
    wrong = [i for i in found if not RUN_ID.fullmatch(i)]
    if wrong:
        raise InvalidInput(
            f"{wrong[0][:40]!r} is not a run id (32 hexadecimal characters)",
            hint="tick the runs to compare in the Runs table of the project page",
        )
    if not 2 <= len(found) <= MOST:
        raise InvalidInput(
            f"pick between 2 and {MOST} runs to compare ({len(found)} chosen)",
            hint="tick the runs to compare in the Runs table of the project page",
        )
    return found


def compare(settings: Settings, project: str, ids: list[str], metric: str) -> Comparison:
    """The runs ``ids`` of ``project`` (all of them its experiment's) and the history of ``metric``.

    Raises:
        NotFound: a run does not exist or belongs to another project's experiment.
    """
    from mlflow.exceptions import MlflowException

    client = views.mlflow_client(settings)
    experiment = views.experiment_id(settings, project)
    found = []
    for run_id in ids:
        try:
            mlflow_run = client.get_run(run_id)
        except MlflowException:
            mlflow_run = None
        if mlflow_run is None or experiment is None or mlflow_run.info.experiment_id != experiment:
            raise NotFound(
                f"project {project} has no run {run_id}",
                hint=f"pick runs from the Runs table at /projects/{project}",
            )
        found.append(run_summary(mlflow_run))
    metric_names = sorted({k for r in found for k in r.metrics})
    param_names = sorted({k for r in found for k in r.params})
    chosen = metric if metric in metric_names else (metric_names[0] if metric_names else "")
    histories = {
        r.run_id: [(float(m.step), float(m.value)) for m in client.get_metric_history(r.run_id, chosen)]
        for r in found
        if chosen in r.metrics
    }
    return Comparison(
        runs=found,
        metrics=[Row(k, [r.metrics.get(k) for r in found]) for k in metric_names],
        params=[Row(k, [r.params.get(k) for r in found]) for k in param_names],
        metric=chosen,
        histories=histories,
    )


def plots(found: Comparison) -> dict[str, Any]:
    """The chosen metric per run (bars), and its history per run (lines) when any run logged steps."""
    metric = found.metric
    if not metric:
        return {"bars": charts.empty("metric per run", "these runs logged no metrics"), "history": None}
    low, high = charts.bounds_of(metric)
    bars = charts.bar_chart(
        f"{metric} per run",
        [(r.run_id[:8], r.metrics[metric]) for r in found.runs if metric in r.metrics],
        top=high if low is not None else None,
    )
    stepped = any(len(points) > 1 for points in found.histories.values())
    history = (
        charts.line_chart(
            f"{metric} by step, one line per run",
            [charts.Series(run_id[:8], points) for run_id, points in found.histories.items()],
            x_title="step",
            y_bounds=(low, high),
        )
        if stepped
        else None
    )
    return {"bars": bars, "history": history}


@router.get("/projects/{name}/compare")
@page
async def compare_page(request: Request, name: str) -> Response:
    mirror(request, "GET", f"/api/v1/projects/{name}/runs", name)
    settings = platform_of(request).settings
    project = await run(request, lambda s: views.get_project(s, name))
    ids = chosen_runs(request.query_params.getlist("run"))
    metric = request.query_params.get("metric", "")[:200]
    found = await anyio.to_thread.run_sync(lambda: compare(settings, name, ids, metric))
    return render(
        request,
        "compare.html",
        project=project,
        found=found,
        plots=plots(found),
        experiment=await anyio.to_thread.run_sync(lambda: views.experiment_id(settings, name)),
    )
