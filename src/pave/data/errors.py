"""Errors of the data layer.

The tree (bases from :mod:`pave.errors`)::

    InvalidInput
    ├── UnsafePath            a data path that could leave the project folder
    └── DataValidationError   rows that break the schema; ``details`` is the report
    NotFound
    └── DataFileMissing       a declared data file does not exist
"""

from __future__ import annotations

from pave.errors import InvalidInput, NotFound


class UnsafePath(InvalidInput):
    code = "unsafe_path"


class DataValidationError(InvalidInput):
    code = "data_validation_failed"


class DataFileMissing(NotFound):
    code = "data_file_missing"
