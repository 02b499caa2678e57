from __future__ import annotations

from pathlib import Path

import pytest

from pave.data.errors import DataFileMissing, UnsafePath
from pave.data.paths import project_path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("s\n1\n")
    return root


def test_a_file_inside_the_project_resolves(project: Path) -> None:
    assert project_path(project, "data/train.csv") == (project / "data" / "train.csv").resolve()


@pytest.mark.parametrize(
    "bad", ["../secret.csv", "data/../../secret.csv", "/etc/passwd", "a\x00b", "", "C:/x.csv"]
)
def test_paths_that_could_escape_are_refused(project: Path, bad: str) -> None:
    with pytest.raises(UnsafePath):
        project_path(project, bad)


def test_a_symlink_pointing_outside_is_refused(project: Path) -> None:
    (project / "data" / "link.csv").symlink_to(project.parent / "secret.csv")
    with pytest.raises(UnsafePath, match="outside the project folder"):
        project_path(project, "data/link.csv")


def test_a_symlink_inside_is_fine(project: Path) -> None:
    (project / "data" / "alias.csv").symlink_to(project / "data" / "train.csv")
    assert project_path(project, "data/alias.csv").name == "train.csv"


def test_a_missing_file_names_the_path_and_a_fix(project: Path) -> None:
    with pytest.raises(DataFileMissing) as info:
        project_path(project, "data/test.csv")
    assert "data/test.csv" in info.value.message
    assert "data.sources" in (info.value.hint or "")
