"""`upgrade`: a three-way merge of a new template version that keeps the owner's edits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pave.errors import Conflict, InvalidInput, NotFound
from pave.pipelines.spec_file import load_spec
from pave.templates import generate, upgrade

ANSWERS = {"project_name": "churn-model", "owner": "alice"}
MY_FEATURE = '''

def add_ratio(df):
    """My own feature: not part of any template."""
    return df.assign(ratio=df["mean_area"] / df["mean_perimeter"])
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Tester", "-c", "user.email=tester@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def old_project(home, tmp_path: Path) -> Path:
    """A tabular-classification 0.1.0 project its owner has edited and committed."""
    project = generate("tabular-classification", tmp_path / "churn-model", ANSWERS, vcs_ref="0.1.0")
    spec = project / "pave.yaml"
    spec.write_text(spec.read_text().replace("params: {C: 1.0}", "params: {C: 0.5}"))
    with (project / "steps.py").open("a") as steps:
        steps.write(MY_FEATURE)
    (project / "NOTES.md").write_text("ours\n")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", "My edits")
    return project


def test_upgrade_brings_the_new_version_and_keeps_the_owners_edits(old_project: Path) -> None:
    result = upgrade(old_project)

    assert (result.template, result.from_version, result.to_version) == (
        "tabular-classification",
        "0.1.0",
        "0.3.0",
    )
    assert result.conflicts == ()
    steps = (old_project / "steps.py").read_text()
    assert "stratify=df[TARGET]" in steps  # the template's improvement
    assert '"precision": float(precision_score(y_true, predicted))' in steps
    assert "def add_ratio(df):" in steps  # the owner's function
    spec = load_spec(old_project)
    assert spec.template.version == "0.3.0"
    assert spec.step("train").params == {"C": 0.5}  # the owner's parameter
    assert (old_project / "NOTES.md").read_text() == "ours\n"
    assert yaml.safe_load((old_project / ".copier-answers.yml").read_text())["_commit"] == "0.3.0"
    assert "<<<<<<<" not in steps
    workflow = (old_project / ".github" / "workflows" / "pave.yml").read_text()
    assert "pave ci" in workflow  # 0.3.0's CI
    assert "pave run" not in workflow
    assert "pave[golden-path]" not in (old_project / "pyproject.toml").read_text()


def test_the_upgraded_project_still_passes_its_tests(old_project: Path) -> None:
    upgrade(old_project)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=old_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (
        "test_prepare_keeps_the_share_of_each_class" in (old_project / "tests" / "test_steps.py").read_text()
    )


def test_the_merge_is_left_for_review_not_committed(old_project: Path) -> None:
    head = git(old_project, "rev-parse", "HEAD")
    upgrade(old_project)
    assert git(old_project, "rev-parse", "HEAD") == head
    changed = git(old_project, "status", "--porcelain")
    assert "steps.py" in changed
    assert "pave.yaml" in changed


def test_a_clash_with_the_owners_edit_is_reported_with_markers(old_project: Path) -> None:
    steps = old_project / "steps.py"
    steps.write_text(steps.read_text().replace("random_state=ctx.seed\n", "random_state=ctx.seed + 1\n"))
    git(old_project, "add", "--all")
    git(old_project, "commit", "--quiet", "-m", "Another seed")

    result = upgrade(old_project)

    assert result.conflicts == ("steps.py",)
    text = steps.read_text()
    assert "<<<<<<<" in text
    assert "random_state=ctx.seed + 1" in text
    assert "stratify=df[TARGET]" in text


def test_uncommitted_changes_are_a_conflict_and_nothing_is_touched(old_project: Path) -> None:
    (old_project / "pave.yaml").write_text((old_project / "pave.yaml").read_text() + "# draft\n")
    with pytest.raises(Conflict, match="uncommitted") as caught:
        upgrade(old_project)
    assert "git commit" in (caught.value.hint or "")
    assert load_spec(old_project).template.version == "0.1.0"


def test_the_latest_version_has_nothing_to_do(old_project: Path) -> None:
    upgrade(old_project, to_version="0.3.0")
    git(old_project, "add", "--all")  # 0.3.0 adds files (notebooks/, request.json)
    git(old_project, "commit", "--quiet", "-m", "Upgrade")
    result = upgrade(old_project)
    assert result.from_version == result.to_version == "0.3.0"
    assert git(old_project, "status", "--porcelain") == ""


def test_a_downgrade_or_an_unknown_version_is_refused(old_project: Path) -> None:
    with pytest.raises(NotFound, match=r"no version '7\.0\.0'"):
        upgrade(old_project, to_version="7.0.0")
    upgrade(old_project)
    git(old_project, "add", "--all")
    git(old_project, "commit", "--quiet", "-m", "Upgrade")
    with pytest.raises(InvalidInput, match="downgrades"):
        upgrade(old_project, to_version="0.1.0")


def test_a_folder_not_made_by_pave_new_is_not_found(home, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"\.copier-answers\.yml"):
        upgrade(tmp_path)


def test_answers_naming_another_machines_templates_are_a_conflict_with_the_fix(old_project: Path) -> None:
    answers = old_project / ".copier-answers.yml"
    data = yaml.safe_load(answers.read_text())
    data["_src_path"] = "/somewhere/else/templates/tabular-classification"
    answers.write_text(yaml.safe_dump(data))
    git(old_project, "add", "--all")
    git(old_project, "commit", "--quiet", "-m", "Moved")
    with pytest.raises(Conflict, match="/somewhere/else") as caught:
        upgrade(old_project)
    assert "_src_path" in (caught.value.hint or "")
