"""Archive extraction (datasets, model bundles): entries that try to escape their root are refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from pave.errors import InvalidInput
from pave.governance.paths import safe_extract


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _tar(path: Path, build: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w") as archive:
        for info in build:
            payload = (data or {}).get(info.name, b"")
            info.size = len(payload) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return path


def _nothing_outside(tmp_path: Path, dest: Path) -> None:
    assert not (tmp_path / "evil.txt").exists()
    assert not list(dest.rglob("*")), "nothing is extracted when one entry is bad"


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "%2e%2e/evil.txt"]
)
def test_zip_slip_entry_escaping_the_destination(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "data.zip", {"ok.csv": b"a,b\n", name: b"owned"})
    dest = tmp_path / "out"
    with pytest.raises(InvalidInput, match="archive entry"):
        safe_extract(archive, dest)
    _nothing_outside(tmp_path, dest)


def test_tar_slip_entry_escaping_the_destination(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "data.tar", [tarfile.TarInfo("../evil.txt")], {"../evil.txt": b"owned"})
    dest = tmp_path / "out"
    with pytest.raises(InvalidInput):
        safe_extract(archive, dest)
    _nothing_outside(tmp_path, dest)


def test_tar_symlink_entry_then_write_through_it(tmp_path: Path) -> None:
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
    archive = _tar(
        tmp_path / "data.tar", [link, tarfile.TarInfo("link/evil.txt")], {"link/evil.txt": b"owned"}
    )
    dest = tmp_path / "out"
    with pytest.raises(InvalidInput, match="link or a device"):
        safe_extract(archive, dest)
    _nothing_outside(tmp_path, dest)


def test_tar_hardlink_to_a_host_file(tmp_path: Path) -> None:
    link = tarfile.TarInfo("passwd")
    link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
    dest = tmp_path / "out"
    with pytest.raises(InvalidInput):
        safe_extract(_tar(tmp_path / "data.tar", [link]), dest)
    assert not (dest / "passwd").exists()


def test_well_formed_archives_extract(tmp_path: Path) -> None:
    written = safe_extract(_zip(tmp_path / "d.zip", {"a/b.csv": b"x"}), tmp_path / "z")
    assert [p.read_bytes() for p in written] == [b"x"]
    safe_extract(_tar(tmp_path / "d.tar", [tarfile.TarInfo("c.csv")], {"c.csv": b"y"}), tmp_path / "t")
    assert (tmp_path / "t" / "c.csv").read_bytes() == b"y"
