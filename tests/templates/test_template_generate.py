"""`generate`: inputs checked with clear errors; the project it writes is a committed git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pave.errors import Conflict, InvalidInput, NotFound
from pave.pipelines.spec_file import load_spec
from pave.templates import generate, get_template

GOOD = {"project_name": "churn-model", "owner": "alice"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(
    "name", ["Churn", "churn_model", "churn model", "-churn", "churn-", "a--b", "x", "a" * 64, ""]
)
def test_a_bad_project_name_is_refused_before_anything_is_written(home, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        generate("tabular-regression", tmp_path / "p", {**GOOD, "project_name": name})
    assert repr(name) in caught.value.message
    assert "lower-case" in (caught.value.hint or "")
    assert not (tmp_path / "p").exists()


def test_an_owner_is_required(home, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="needs an owner"):
        generate("tabular-regression", tmp_path / "p", {"project_name": "churn-model"})


def test_an_unknown_answer_is_refused_with_the_questions_in_the_hint(home, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="projectname") as caught:
        generate("tabular-regression", tmp_path / "p", {**GOOD, "projectname": "x"})
    assert "project_name" in (caught.value.hint or "")


def test_an_unknown_template_or_version_is_not_found(home, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="'image-segmentation'"):
        generate("image-segmentation", tmp_path / "p", GOOD)
    with pytest.raises(NotFound, match=r"no version '9\.9\.9'") as caught:
        generate("tabular-regression", tmp_path / "p", GOOD, vcs_ref="9.9.9")
    assert "0.1.0" in (caught.value.hint or "")


def test_a_non_empty_destination_is_a_conflict_and_is_left_alone(home, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    with pytest.raises(Conflict, match="not an empty folder") as caught:
        generate("tabular-regression", tmp_path / "p", GOOD)
    assert caught.value.hint
    assert [f.name for f in (tmp_path / "p").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(Conflict):
        generate("tabular-regression", tmp_path / "file", GOOD)


def test_an_empty_destination_folder_is_fine(home, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    assert generate("tabular-regression", tmp_path / "p", GOOD) == (tmp_path / "p").resolve()


def test_the_project_is_a_clean_git_repository_with_its_answers_recorded(home, tmp_path: Path) -> None:
    project = generate(
        "tabular-classification", tmp_path / "p", {**GOOD, "description": "Who will  leave?"}, vcs_ref="0.1.0"
    )
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "log", "--format=%s").splitlines() == [
        "New project from tabular-classification 0.1.0"
    ]
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "0.1.0"
    assert answers["project_name"] == "churn-model"
    assert answers["description"] == "Who will leave?"
    spec = load_spec(project)
    assert (spec.name, spec.owner, spec.description) == ("churn-model", "alice", "Who will leave?")
    assert (spec.template.name, spec.template.version) == ("tabular-classification", "0.1.0")


def test_the_latest_version_is_the_default(home, tmp_path: Path) -> None:
    project = generate("tabular-classification", tmp_path / "p", GOOD)
    latest = get_template("tabular-classification").version
    assert load_spec(project).template.version == latest
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == latest


def test_inside_an_existing_repository_no_nested_repository_is_made(home, tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    project = generate("tabular-regression", tmp_path / "models" / "p", GOOD)
    assert not (project / ".git").exists()
    assert "models/" in git(tmp_path, "status", "--porcelain")


def test_quotes_and_markup_in_the_description_stay_valid_yaml(home, tmp_path: Path) -> None:
    text = 'Flags "risky" <accounts> & more: #1'
    project = generate("recommendation", tmp_path / "p", {**GOOD, "description": text})
    assert load_spec(project).description == text
    assert yaml.safe_load((project / "catalog-info.yaml").read_text())["metadata"]["description"] == text
