"""The template table, and the git repositories built from the packaged version folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pave.errors import NotFound
from pave.templates import TEMPLATES, get_template, list_templates
from pave.templates.repo import template_repo


def tag_commits(repo: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "show-ref", "--tags"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return {ref.removeprefix("refs/tags/"): sha for sha, ref in (line.split() for line in out.splitlines())}


def test_the_table_lists_every_template_folder_and_version() -> None:
    names = [t.name for t in list_templates()]
    assert names == ["tabular-classification", "tabular-regression", "recommendation"]
    for info in TEMPLATES:
        folders = sorted(p.name for p in info.source.iterdir() if p.is_dir() and p.name != "__pycache__")
        assert folders == sorted(info.versions), info.name
        assert (info.source / info.versions[0] / "copier.yml").is_file()
        assert info.version == info.versions[-1]


def test_at_least_one_template_ships_two_versions() -> None:
    assert get_template("tabular-classification").versions == ("0.1.0", "0.2.0", "0.3.0")


def test_an_unknown_template_is_not_found_and_the_hint_lists_the_real_ones() -> None:
    with pytest.raises(NotFound) as caught:
        get_template("tabular-clasification")
    assert "tabular-clasification" in caught.value.message
    assert "tabular-classification" in (caught.value.hint or "")


@pytest.mark.parametrize("info", TEMPLATES, ids=lambda t: t.name)
def test_the_repository_has_one_tag_per_version(info, tmp_path: Path) -> None:
    repo = template_repo(info, tmp_path)
    assert repo == tmp_path / "templates" / info.name
    assert sorted(tag_commits(repo)) == sorted(info.versions)
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    assert clean.stdout == ""


def test_rebuilding_gives_the_same_commits_so_old_answers_files_stay_valid(tmp_path: Path) -> None:
    info = get_template("tabular-classification")
    first = tag_commits(template_repo(info, tmp_path / "a"))
    second = tag_commits(template_repo(info, tmp_path / "b"))
    assert first == second


def test_a_stale_repository_is_rebuilt(tmp_path: Path) -> None:
    info = get_template("tabular-regression")
    repo = template_repo(info, tmp_path)
    (repo / ".git" / "pave-fingerprint").write_text("an older Pave")
    subprocess.run(["git", "tag", "-d", info.version], cwd=repo, check=True, capture_output=True)
    assert info.version in tag_commits(template_repo(info, tmp_path))


def test_no_template_file_is_a_dot_file_that_packaging_would_drop() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "."], cwd=TEMPLATES[0].source.parent, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "the templates are not tracked by git"
    hidden = [path for path in tracked if any(part.startswith(".") for part in Path(path).parts)]
    assert hidden == []
