"""Run comparison and the starter-notebook link on a real `pave up`: side by side, charts, roles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from portal_kit import Portal

from pave.governance.access import set_member
from pave.store.db import transaction
from pave.store.tables import Project


@pytest.fixture(scope="module")
def runs(portal: Portal) -> dict[str, list[str]]:
    """Projects alpha (three runs, one with a metric history by step) and beta (two runs); ann
    reads alpha only."""
    from mlflow.tracking import MlflowClient

    url = portal.settings.mlflow_db_url
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    found: dict[str, list[str]] = {}
    with transaction(portal.sessions) as session:
        session.add(
            Project(
                name="alpha",
                owner="olga",
                description="",
                created_by="olga",
                labels={},
                template="tabular-classification",
                template_version="0.3.0",
            )
        )
        session.add(
            Project(
                name="beta",
                owner="olga",
                description="",
                created_by="olga",
                labels={},
                template="tabular-classification",
                template_version="0.1.0",
            )
        )
        session.flush()
        set_member(session, "alpha", "ann", "viewer", granted_by="olga")
    for name, accuracies in (("alpha", (0.91, 0.97, 0.97)), ("beta", (0.555, 0.666))):
        location = (Path(portal.settings.artifacts) / "mlflow" / name).as_uri()
        experiment = client.create_experiment(name, artifact_location=location)
        for i, accuracy in enumerate(accuracies):
            run = client.create_run(experiment, tags={"pave.project": name})
            run_id = run.info.run_id
            if i == 0:  # a history: accuracy by epoch
                for step, value in enumerate((0.6, 0.8, accuracy)):
                    client.log_metric(run_id, "accuracy", value, step=step)
            else:
                client.log_metric(run_id, "accuracy", accuracy)
            client.log_metric(run_id, "rmse", 0.25)  # the same in every run
            client.log_param(run_id, "C", str(i + 1))
            client.log_param(run_id, "penalty", "l2")
            client.set_terminated(run_id, "FINISHED")
            found.setdefault(name, []).append(run_id)
    return found


def _rows(html: str, table: int) -> dict[str, tuple[bool, list[str]]]:
    """Name -> (highlighted as differing, cell texts) of the page's ``table``-th comparison table."""
    body = re.findall(r'<table class="compare">(.*?)</table>', html, re.S)[table]
    out = {}
    for attrs, name, cells in re.findall(r"<tr([^>]*)><th scope=\"row\">([^<]+)[^\n]*?</th>(.*?)</tr>", body):
        out[name.strip()] = ("differs" in attrs, re.findall(r"<td[^>]*>([^<]*)</td>", cells))
    return out


def test_the_runs_table_offers_a_comparison_and_it_shows_the_runs_side_by_side(
    portal: Portal, runs: dict[str, list[str]]
) -> None:
    admin = portal.signed_in(portal.admin_token)
    project = admin.get("/projects/alpha").text
    for run_id in runs["alpha"]:
        assert f'name="run" value="{run_id}" form="compare-runs"' in project
    assert 'action="/projects/alpha/compare"' in project

    chosen = runs["alpha"]
    page = admin.get("/projects/alpha/compare", params=[("run", r) for r in chosen])
    assert page.status_code == 200, page.text[-2000:]
    metrics = _rows(page.text, 0)
    assert metrics["accuracy"] == (True, ["0.91", "0.97", "0.97"])
    assert metrics["rmse"] == (False, ["0.25", "0.25", "0.25"])
    params = _rows(page.text, 1)
    assert params["C"] == (True, ["1", "2", "3"])
    assert params["penalty"] == (False, ["l2", "l2", "l2"])
    # a bar per run, against 1 for a score; the history of the run that logged steps as a line
    bars = re.search(r'<svg[^>]*aria-label="accuracy per run".*?</svg>', page.text, re.S)
    assert bars is not None
    assert bars[0].count("<rect") == 3
    history = re.search(r'<svg[^>]*aria-label="accuracy by step, one line per run".*?</svg>', page.text, re.S)
    assert history is not None
    assert history[0].count("<polyline") == 1
    ticks = [float(t) for t in re.findall(r'text-anchor="end" font-size="11"[^>]*>([0-9.]+)<', history[0])]
    assert ticks
    assert max(ticks) <= 1.0

    other = admin.get(
        "/projects/alpha/compare", params=[("run", r) for r in chosen[:2]] + [("metric", "rmse")]
    )
    assert 'aria-label="rmse per run"' in other.text


def test_a_comparison_needs_two_to_eight_real_run_ids(portal: Portal, runs: dict[str, list[str]]) -> None:
    admin = portal.signed_in(portal.admin_token)
    one = admin.get("/projects/alpha/compare", params={"run": runs["alpha"][0]})
    assert one.status_code == 400
    assert "pick between 2 and 8 runs to compare (1 chosen)" in one.text
    assert "tick the runs to compare" in one.text
    wrong = admin.get("/projects/alpha/compare", params=[("run", runs["alpha"][0]), ("run", "../../etc")])
    assert wrong.status_code == 400
    assert "is not a run id" in wrong.text
    missing = admin.get("/projects/alpha/compare", params=[("run", runs["alpha"][0]), ("run", "0" * 32)])
    assert missing.status_code == 404
    assert f"project alpha has no run {'0' * 32}" in missing.text


def test_a_reader_of_one_project_cannot_compare_another_projects_runs(
    portal: Portal, runs: dict[str, list[str]]
) -> None:
    ann = portal.signed_in(portal.token("ann", "viewer"))
    assert ann.get("/projects/alpha/compare", params=[("run", r) for r in runs["alpha"]]).status_code == 200
    refused = ann.get("/projects/beta/compare", params=[("run", r) for r in runs["beta"]])
    assert refused.status_code == 403
    assert "0.555" not in refused.text
    # nor through the project ann may read: beta's runs are not alpha's
    smuggled = ann.get(
        "/projects/alpha/compare", params=[("run", runs["alpha"][0]), ("run", runs["beta"][0])]
    )
    assert smuggled.status_code == 404
    assert "0.555" not in smuggled.text
    assert "has no run" in smuggled.text
    assert ann.get("/projects/beta/notebook").status_code == 403


def test_the_project_page_links_the_starter_notebook_of_its_template(
    portal: Portal, runs: dict[str, list[str]]
) -> None:
    admin = portal.signed_in(portal.admin_token)
    page = admin.get("/projects/alpha").text
    assert 'href="/projects/alpha/notebook"' in page
    assert "pave notebook ." in page
    notebook = admin.get("/projects/alpha/notebook")
    assert notebook.status_code == 200
    assert notebook.headers["content-type"].startswith("application/x-ipynb+json")
    assert "attachment" in notebook.headers["content-disposition"]
    cells = json.loads(notebook.text)["cells"]
    assert any("mlflow" in "".join(c["source"]) for c in cells)
    # beta was made from a template version older than the notebook: the page says how to get it
    old = admin.get("/projects/beta").text
    assert 'href="/projects/beta/notebook"' not in old
    assert "pave template upgrade" in old
    missing = admin.get("/projects/beta/notebook")
    assert missing.status_code == 404
    assert "ships no starter notebook" in missing.text
