"""A run's data: every source of ``data.sources`` read, versioned and its fingerprint taken.

Project files are read in place; ``s3://``, ``https://`` and SQL sources are materialised to a file
first (:mod:`pave.data.remote`); either way the file is versioned by content hash
(:func:`pave.data.versioning.version_file`). A reproduction reads the recorded versions instead,
and a tuning study the versions it pinned when it started (:func:`pin_sources`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pave.data.objects import ObjectStore
from pave.data.paths import project_path
from pave.data.remote import materialise
from pave.data.versioning import DatasetVersion, read_frame, stored_file, version_file
from pave.errors import InvalidInput
from pave.pipelines.spec import ProjectSpec


@dataclass
class Loaded:
    """The frames the steps get and the version of each source."""

    frames: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, DatasetVersion] = field(default_factory=dict)


def load_sources(
    spec: ProjectSpec,
    project: Path,
    objects: ObjectStore,
    *,
    data_files: Mapping[str, Path] | None = None,
    pinned: Mapping[str, Mapping[str, str]] | None = None,
) -> Loaded:
    """Read and version every source of ``spec``.

    Args:
        spec: the project spec.
        project: the project folder (where file sources are).
        objects: where the versions are stored.
        data_files: a reproduction's files, one per source (nothing else is read).
        pinned: ``{source: {"sha256", "fingerprint"}}`` stored before (a study's, :func:`pin_sources`).
    """
    pinned = pinned or {}
    loaded = Loaded()
    with tempfile.TemporaryDirectory(prefix="pave-sources-") as tmp:
        for name, source in spec.data.sources.items():
            fingerprint, filename = None, None
            if data_files:  # a reproduction: the recorded version, as stored
                path = data_files[name]
            elif source.kind == "file":
                path = project_path(project, str(source.path))
            elif name in pinned:  # read once for the whole study
                path = stored_file(pinned[name]["sha256"], objects=objects, folder=Path(tmp) / name)
                fingerprint = pinned[name].get("fingerprint")
            else:
                got = materialise(name, source, Path(tmp) / name)
                path, filename, fingerprint = got.path, got.filename, got.fingerprint
            file_format = source.file_format or "csv"
            try:
                frame = read_frame(path, file_format)
            except Exception as exc:
                raise InvalidInput(
                    f"data source {name} ({source.where}) cannot be read as {file_format}: "
                    f"{type(exc).__name__}: {exc}",
                    hint=f"check the file, or set data.sources.{name}.format in pave.yaml",
                ) from exc
            loaded.versions[name] = version_file(
                name,
                path,
                objects=objects,
                file_format=file_format,
                frame=frame,
                filename=filename,
                source=None if source.kind == "file" else source.where,
                fingerprint=fingerprint,
            )
            loaded.frames[name] = frame
    return loaded


def pin_sources(spec: ProjectSpec, objects: ObjectStore) -> dict[str, dict[str, str]]:
    """Read every source that is not a project file once and store its version, so that the runs
    of one study all see the same data: ``{source: {"sha256": ..., "fingerprint": ...}}``."""
    pinned: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="pave-sources-") as tmp:
        for name, source in spec.data.sources.items():
            if source.kind == "file":
                continue
            got = materialise(name, source, Path(tmp) / name)
            version = version_file(
                name,
                got.path,
                objects=objects,
                file_format=source.file_format or "csv",
                filename=got.filename,
                source=source.where,
                fingerprint=got.fingerprint,
            )
            pinned[name] = {"sha256": version.sha256, "fingerprint": str(version.fingerprint)}
    return pinned
