"""The environment lock: every installed distribution, read again only where something changed."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from pave.tracking import lineage as L


def _dist(folder: Path, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_lock_lists_every_installed_distribution_as_pip_freeze_would() -> None:
    expected = {
        f"{L._normalise(d.metadata['Name'])}=={d.version}"
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    assert set(L.environment_lock()) == expected
    assert L.environment_lock() == sorted(L.environment_lock())


def test_a_project_folder_put_first_on_sys_path_does_not_make_the_installed_packages_read_again(
    tmp_path: Path,
) -> None:
    L.environment_lock()
    site = next(f for f in L._FOLDERS if f.endswith("site-packages") and L._FOLDERS[f][1])
    read = L._FOLDERS[site]
    project = tmp_path / "project"
    project.mkdir()
    sys.path.insert(0, str(project))  # what a run does while it imports the project's steps
    try:
        with_project = L.environment_lock()
        (project / "steps.py").write_text("x = 1\n")  # the project folder changes: only it is read again
        assert L.environment_lock() == with_project
    finally:
        sys.path.remove(str(project))
    assert L._FOLDERS[site] is read  # the same entry: site-packages was not read again
    assert L.environment_lock() == with_project


def test_a_package_installed_or_upgraded_meanwhile_is_in_the_next_lock(tmp_path: Path) -> None:
    sys.path.append(str(tmp_path))
    try:
        before = L.environment_lock()
        _dist(tmp_path, "pave-probe-package", "1.0")
        assert "pave-probe-package==1.0" in L.environment_lock()
        (tmp_path / "pave-probe-package-1.0.dist-info" / "METADATA").unlink()
        (tmp_path / "pave-probe-package-1.0.dist-info").rmdir()
        _dist(tmp_path, "pave-probe-package", "2.0")
        lock = L.environment_lock()
        assert "pave-probe-package==2.0" in lock
        assert "pave-probe-package==1.0" not in lock
    finally:
        sys.path.remove(str(tmp_path))
    assert L.environment_lock() == before
