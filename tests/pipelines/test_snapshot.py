"""Code snapshots: what goes into a run's archive, and that it comes back whole and only inside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pave.data.objects import StorageObjects
from pave.data.versioning import sha256_file
from pave.errors import InvalidInput
from pave.pipelines.snapshot import make_snapshot, restore_snapshot, snapshot_files
from pave.storage import open_storage


def project(root: Path) -> Path:
    files = {
        "pave.yaml": "name: p\n",
        "steps.py": "def f():\n    return 1\n",
        "pkg/util.py": "X = 1\n",
        "data/train.csv": "a\n1\n",
        ".env": "PASSWORD=hunter2\n",
        ".env.local": "TOKEN=x\n",
        "deploy/key.pem": "-----BEGIN",
        ".git/config": "[core]\n",
        ".venv/lib/x.py": "",
        "pkg/__pycache__/util.cpython-311.pyc": "",
        "home/.aws/credentials": "[default]\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "outside-link").symlink_to("/etc/passwd")
    return root


def test_secrets_vcs_envs_and_declared_data_stay_out(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    assert snapshot_files(root, skip=["data/train.csv"]) == ["pave.yaml", "pkg/util.py", "steps.py"]


def test_the_archive_is_deterministic_and_restores_whole(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    first = make_snapshot(root, tmp_path / "a.tar.gz")
    (root / "steps.py").touch()  # a new modification time changes nothing
    second = make_snapshot(root, tmp_path / "b.tar.gz")
    assert sha256_file(first) == sha256_file(second)
    store = StorageObjects(open_storage(str(tmp_path / "store")))
    sha = sha256_file(first)
    store.put("code", sha, first, {"filename": "code.tar.gz"})
    back = restore_snapshot(store, sha, tmp_path / "restored")
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file()) == [
        "data/train.csv",
        "pave.yaml",
        "pkg/util.py",
        "steps.py",
    ]
    assert (back / "steps.py").read_text() == "def f():\n    return 1\n"


def test_a_forged_snapshot_cannot_write_outside(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "code.tar.gz"
    archive.write_bytes(buffer.getvalue())
    store = StorageObjects(open_storage(str(tmp_path / "store")))
    sha = sha256_file(archive)
    store.put("code", sha, archive, {"filename": "code.tar.gz"})
    with pytest.raises(InvalidInput):
        restore_snapshot(store, sha, tmp_path / "restored")
    assert not (tmp_path / "escaped.py").exists()
