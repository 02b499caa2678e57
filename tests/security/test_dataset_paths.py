"""Dataset paths: the data layer refuses what the request layer refuses (same checks, full decoding).

Named after the classes they derive from: path traversal in its encoded forms (CVE-2023-1177,
CVE-2023-6831 in MLflow), symlink escape (CVE-2023-6975), archive entries escaping their folder
(zip slip), and store paths read from user-writable records.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from pave.data.errors import UnsafePath
from pave.data.objects import StorageObjects
from pave.data.paths import extract_archive, project_path
from pave.data.versioning import stored_file, version_file
from pave.errors import InvalidInput
from pave.governance import paths as governance_paths
from pave.storage import open_storage


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("s\n1\n")
    return root


@pytest.mark.parametrize(
    "encoded",
    [
        "%2e%2e/secret.csv",
        "data/%2e%2e/%2e%2e/secret.csv",
        "data/%252e%252e/%252e%252e/secret.csv",  # double-encoded
        "%2Fetc%2Fpasswd",
        "data/train.csv%00.png",
        "data\\..\\..\\secret.csv",
        "C:%5Csecret.csv",
        "data/%c0%ae%c0%ae/secret.csv",  # overlong UTF-8 for '.'
    ],
)
def test_path_traversal_in_encoded_forms_is_refused_like_on_the_api(project: Path, encoded: str) -> None:
    with pytest.raises(UnsafePath):
        project_path(project, encoded)
    with pytest.raises(InvalidInput):  # the request layer refuses the same name
        governance_paths.check_relative_path(encoded)


def test_a_name_with_a_percent_sign_is_opened_as_written(project: Path) -> None:
    (project / "data" / "q%201.csv").write_text("a\n1\n")
    assert project_path(project, "data/q%201.csv").name == "q%201.csv"


def test_symlink_escape_by_file_or_folder_is_refused(project: Path, tmp_path: Path) -> None:
    (project / "data" / "link.csv").symlink_to(tmp_path / "secret.csv")
    (project / "outside").symlink_to(tmp_path, target_is_directory=True)
    for name in ("data/link.csv", "outside/secret.csv"):
        with pytest.raises(UnsafePath, match="outside the project folder"):
            project_path(project, name)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def test_zip_slip_in_a_dataset_archive_writes_nothing(project: Path, tmp_path: Path) -> None:
    (project / "data" / "bundle.zip").write_bytes(_zip({"ok.csv": b"a\n1\n", "../../escaped.csv": b"x"}))
    destination = tmp_path / "unpacked"
    with pytest.raises(UnsafePath, match=r"escaped\.csv"):
        extract_archive(project, "data/bundle.zip", destination)
    assert not (tmp_path / "escaped.csv").exists()
    assert not list(destination.rglob("*.csv"))


def test_a_tar_link_in_a_dataset_archive_is_refused(project: Path, tmp_path: Path) -> None:
    archive = project / "data" / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("data.csv")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(UnsafePath, match="link"):
        extract_archive(project, "data/bundle.tar", tmp_path / "unpacked")
    assert not (tmp_path / "unpacked" / "data.csv").exists()
    (project / "data" / "good.zip").write_bytes(_zip({"part/ok.csv": b"a\n1\n"}))
    written = extract_archive(project, "data/good.zip", tmp_path / "good")
    assert [p.relative_to(tmp_path / "good").as_posix() for p in written] == ["part/ok.csv"]


def test_dataset_store_paths_from_run_records_cannot_leave_the_store(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = StorageObjects(open_storage(str(root)))
    out = tmp_path / "out"
    version = version_file("train", project / "data" / "train.csv", objects=store, file_format="csv")
    assert stored_file(version.sha256, objects=store, folder=out).read_text() == "a\n1\n"
    # The sha is read from a run's tags, which any developer can write through MLflow's API.
    for forged in ("../../../secret", "..", "ab/../../x", version.sha256[:12]):
        with pytest.raises(UnsafePath, match="not a sha256 digest"):
            stored_file(forged, objects=store, folder=out)
    manifest = (root / version.stored_path).parent / "manifest.json"
    record = json.loads(manifest.read_text())
    for filename in ("../../../../secret.csv", "/etc/passwd", "%2e%2e/%2e%2e/x"):
        manifest.write_text(json.dumps(record | {"filename": filename}))
        with pytest.raises(UnsafePath, match=r"outside its folder|link out of the store"):
            stored_file(version.sha256, objects=store, folder=out)
    ((root / version.stored_path).parent / "link.csv").symlink_to(tmp_path / "secret.csv")
    manifest.write_text(json.dumps(record | {"filename": "link.csv"}))
    with pytest.raises(UnsafePath, match=r"outside its folder|link out of the store"):
        stored_file(version.sha256, objects=store, folder=out)
