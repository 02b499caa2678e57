"""The golden path through the CLI, as a data scientist runs it, against a real `pave up`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pave_testing import PaveServer, run_pave

pytestmark = pytest.mark.slow

TEMPLATES = ["tabular-classification", "tabular-regression", "recommendation"]


def _env(server: PaveServer) -> dict[str, str]:
    return server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}


def _json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("template", TEMPLATES)
def test_new_run_and_the_projects_own_tests(template: str, shared_server: PaveServer, tmp_path: Path) -> None:
    name = f"gp-{template}"
    env = _env(shared_server)
    created = run_pave("new", name, "--template", template, "--dir", str(tmp_path / name), env=env)
    assert created.returncode == 0, created.stderr
    project = tmp_path / name
    assert (project / "pave.yaml").exists()

    result = _json(run_pave("run", str(project), "--json", env=env, timeout=600))
    assert isinstance(result, dict)
    assert result["status"] == "FINISHED"
    assert result["gates_passed"] is True
    assert result["alias"] == "candidate"
    assert result["git_commit"], "the generated project is a git repository and the commit is recorded"

    own_tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert own_tests.returncode == 0, own_tests.stdout[-3000:]

    with shared_server.client() as client:
        registered = client.get(f"/api/v1/projects/{name}").json()
        assert registered["template"] == template
        versions = client.get(f"/api/v1/projects/{name}/models").json()
        assert versions[0]["aliases"] == ["candidate"]
        tags = versions[0]["tags"]
        for key in ("pave.run_id", "pave.env.hash", "pave.git.commit"):
            assert any(t.startswith(key) for t in tags), (key, sorted(tags))
        assert any(t.startswith("pave.data.") for t in tags)
        runs = client.get(f"/api/v1/projects/{name}/runs").json()
        artifacts = client.get(
            "/mlflow/api/2.0/mlflow/artifacts/list", params={"run_id": runs[0]["run_id"], "path": "data"}
        ).json()
        assert {"data/profile.json", "data/versions.json"} <= {f["path"] for f in artifacts["files"]}
    for sha in result["data_versions"].values():
        assert list((shared_server.home / "artifacts" / "datasets").rglob(f"{sha}*")), "data version stored"


def test_rerun_caches_param_change_reruns_downstream_and_reproduce(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    env = _env(shared_server)
    project = tmp_path / "gp-cache"
    assert (
        run_pave("new", "gp-cache", "-t", "tabular-classification", "--dir", str(project), env=env).returncode
        == 0
    )
    first = _json(run_pave("run", str(project), "--json", env=env, timeout=600))
    second = _json(run_pave("run", str(project), "--json", env=env, timeout=600))
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert {s["name"]: s["status"] for s in second["steps"]} == dict.fromkeys(
        [s["name"] for s in first["steps"]], "cached"
    )
    assert second["metrics"] == first["metrics"]
    assert second["reused"] is True, "a no-op run registers no copy of the model"
    assert second["model_version"] == first["model_version"]
    changed = _json(run_pave("run", str(project), "--set", "train.C=0.5", "--json", env=env, timeout=600))
    assert isinstance(changed, dict)
    statuses = {s["name"]: s["status"] for s in changed["steps"]}
    assert statuses["prepare"] == "cached"
    assert statuses["train"] == "ran"
    assert statuses["evaluate"] == "ran"
    assert changed["model_version"] == str(int(first["model_version"]) + 1)

    failing = run_pave("run", str(project), "--set", "train.C=0.000001", env=env, timeout=600)
    assert failing.returncode == 3, failing.stderr[-2000:]
    assert "gates failed" in failing.stderr
    assert "FAIL" in failing.stdout
    with shared_server.client() as client:
        versions = client.get("/api/v1/projects/gp-cache/models").json()
    assert versions[0]["aliases"] == [], "a failed gate moves no alias"
    assert "candidate" in versions[1]["aliases"]

    listed = run_pave("runs", "gp-cache", env=env)
    assert listed.returncode == 0, listed.stderr
    header = next(line for line in listed.stdout.splitlines() if "status" in line)
    assert header.index("roc_auc") < header.index("metrics"), "the primary metric comes first"
    row = next(line for line in listed.stdout.splitlines() if changed["run_id"][:12] in line)
    assert "train.C=0.5" in row
    assert f"{changed['metrics']['roc_auc']:.4g}" in row

    reproduced = run_pave("reproduce", first["run_id"][:12], env=env, timeout=600)  # as `pave runs` shows it
    assert reproduced.returncode == 0, reproduced.stderr[-3000:]
    assert "identical metrics" in reproduced.stdout


def test_bad_spec_and_unknown_template_are_clear(shared_server: PaveServer, tmp_path: Path) -> None:
    env = _env(shared_server)
    unknown = run_pave("new", "gp-x", "--template", "no-such-template", "--dir", str(tmp_path / "x"), env=env)
    assert unknown.returncode == 1
    assert "no-such-template" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert not (tmp_path / "x").exists()

    project = tmp_path / "gp-broken"
    assert (
        run_pave("new", "gp-broken", "-t", "tabular-regression", "--dir", str(project), env=env).returncode
        == 0
    )
    spec = project / "pave.yaml"
    spec.write_text(spec.read_text().replace("seed:", "seed: not-a-number\nxseed:", 1))
    broken = run_pave("run", str(project), env=env)
    assert broken.returncode == 1
    assert "pave.yaml" in broken.stderr
    assert "line" in broken.stderr
    assert "Traceback" not in broken.stderr
    with shared_server.client() as client:
        assert client.get("/api/v1/projects/gp-broken/models").json() == []

    taken = run_pave(
        "new", "gp-broken", "-t", "tabular-regression", "--dir", str(tmp_path / "again"), env=env
    )
    assert taken.returncode == 1
    assert "exists already" in taken.stderr
    assert not (tmp_path / "again").exists(), "a refused registration leaves no half-made project"
