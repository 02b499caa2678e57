"""``pave monitor PROJECT`` and ``pave alerts``: drift, performance per version, alerts."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from pave.cli.console import console, print_json
from pave.cli.loop import loop_table
from pave.client import Client
from pave.errors import InvalidInput
from pave.schemas.monitoring import AlertOut

app = typer.Typer()


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"


def alerts_table(alerts: list[AlertOut], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "id",
        "project",
        "monitor",
        "kind",
        "subject",
        "severity",
        "status",
        "opened",
        "last seen",
    ):
        table.add_column(column)
    table.add_column("deliveries")
    for alert in alerts:
        deliveries = ", ".join(
            f"{d.sink} {d.event}: {d.status}" + (f" ({d.attempts} tries)" if d.attempts > 1 else "")
            for d in alert.deliveries
        )
        style = "red" if alert.status == "open" else "dim"
        table.add_row(
            str(alert.id),
            alert.project,
            alert.monitor,
            alert.kind,
            alert.subject,
            alert.severity,
            f"[{style}]{alert.status}[/]",
            _when(alert.opened_at),
            _when(alert.last_seen_at),
            deliveries or "-",
        )
    return table


@app.command("monitor")
def monitor(
    project: str = typer.Argument(..., help="The project whose deployment to show."),
    window: str = typer.Option("24h", "--window", help="Performance over this much time: 1h, 24h, 7d."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
) -> None:
    """Drift per feature, performance per version and open alerts of a project's deployment."""
    with Client() as client:
        data = client.get_monitoring(project, window=window)
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{project}[/]: deployment {data.deployment or '(none)'}")
    drift = Table(title="Drift per feature (latest evaluation)", title_justify="left")
    for column in (
        "monitor",
        "feature",
        "method",
        "statistic",
        "p-value",
        "threshold",
        "rows",
        "drifting",
        "at",
    ):
        drift.add_column(column)
    shown = 0
    for item in data.monitors:
        result = item.result or {}
        if result.get("type") not in ("drift", "prediction_drift"):
            continue
        for verdict in result.get("verdicts", []):
            shown += 1
            flag = "[red]yes[/]" if verdict.get("firing") else "no"
            drift.add_row(
                item.name,
                verdict["subject"],
                verdict.get("method", "-"),
                _num(verdict.get("statistic")),
                _num(verdict.get("p_value")),
                _num(verdict.get("threshold")),
                str(verdict.get("n_current", "-")),
                flag,
                _when(item.last_run_at),
            )
    if shown:
        console.print(drift)
    else:
        console.print(
            "no drift evaluated yet (declare monitors under `monitor:` in pave.yaml; see docs/monitoring.md)"
        )

    perf = Table(title=f"Performance per version (last {window}, labelled requests)", title_justify="left")
    names = sorted({m for p in data.performance.values() for m in p["metrics"]})
    for column in ("version", "labelled", *names):
        perf.add_column(column)
    for version, perf_item in data.performance.items():
        perf.add_row(
            version, str(perf_item["n_labelled"]), *(_num(perf_item["metrics"].get(n)) for n in names)
        )
    if data.performance:
        console.print(perf)
    else:
        console.print(f"no labelled requests in the last {window} (post labels with POST /api/v1/feedback)")

    if data.alerts:
        console.print(alerts_table(data.alerts, "Open alerts"))
    else:
        console.print("no open alerts")

    with Client() as client:
        turns = client.get_loop(project, limit=5).runs
    if turns:
        console.print(loop_table(turns, "Closed loop (latest retrains; all of them: pave loop PROJECT)"))
    else:
        console.print("no retrain yet (the closed loop: docs/automation.md)")


@app.command("alerts")
def alerts(
    project: str | None = typer.Argument(None, help="Only this project's alerts."),
    include_resolved: bool = typer.Option(False, "--all", help="Resolved alerts too."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
) -> None:
    """Alerts raised by the monitors, newest first (open ones unless --all)."""
    with Client() as client:
        found = client.list_alerts(project, include_resolved=include_resolved)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(
            "no alerts" if include_resolved else "no open alerts (`pave alerts --all` shows resolved ones)"
        )
        return
    console.print(alerts_table(found, "Alerts" if include_resolved else "Open alerts"))


@app.command("incidents")
def incidents(
    project: str | None = typer.Argument(None, help="Only this project's incidents."),
    include_resolved: bool = typer.Option(False, "--all", help="Resolved incidents too."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
) -> None:
    """Incidents: one per episode of a monitor's trouble, with what fires and what was sent."""
    with Client() as client:
        found = client.list_incidents(project, include_resolved=include_resolved)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no incidents" if include_resolved else "no open incidents (`pave incidents --all`)")
        return
    table = Table(title="Incidents" if include_resolved else "Open incidents", title_justify="left")
    for column in ("id", "project", "monitor", "kind", "subjects", "status", "opened", "resolved", "sent"):
        table.add_column(column)
    for incident in found:
        subjects = incident.subjects or incident.ever
        listed = ", ".join(subjects[:6]) + (f" and {len(subjects) - 6} more" if len(subjects) > 6 else "")
        sent = (
            "silenced"
            if incident.silenced
            else ", ".join(f"{d.sink} {d.event}: {d.status}" for d in incident.deliveries)
        )
        table.add_row(
            str(incident.id),
            incident.project,
            incident.monitor,
            incident.kind,
            listed,
            incident.status,
            (incident.opened_at or "")[:19],
            (incident.resolved_at or "")[:19],
            sent,
            style="red" if incident.status == "open" else "dim",
        )
    console.print(table)


_UNITS = {"m": 1.0, "h": 60.0, "d": 1440.0}


@app.command("silence")
def silence(
    project: str = typer.Argument(..., help="The project whose incidents to silence."),
    duration: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d (at most 30d)."),
    monitor: str | None = typer.Option(None, "--monitor", help="Only this monitor's incidents."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind (drift, performance...)."),
    reason: str = typer.Option("", "--reason", help="Why (shown with the silence)."),
    end: int | None = typer.Option(None, "--end", help="End the silence with this id now instead."),
) -> None:
    """Silence a project's incidents for a while (stored, not sent); `pave silence P --end ID` ends one."""
    with Client() as client:
        if end is not None:
            client.end_silence(project, end)
            console.print(f"silence {end} of {project} ended")
            return
        unit = duration[-1:].lower()
        if unit not in _UNITS or not duration[:-1].replace(".", "", 1).isdigit():
            raise InvalidInput(f"--for {duration!r} is not a duration", hint="--for 30m, --for 2h, --for 1d")
        made = client.silence(
            project, float(duration[:-1]) * _UNITS[unit], monitor=monitor, kind=kind, reason=reason
        )
    console.print(f"silence {made.id} of {project} until {made.expires_at[:19]} UTC")
