"""Errors of the data layer.

The tree (bases from :mod:`pave.errors`)::

    InvalidInput
    ├── UnsafePath            a data path that could leave the project folder
    ├── DataValidationError   rows that break the schema; ``details`` is the report
    └── SourceInvalid         a source the pipeline cannot read: bad SQL, a missing driver, a bad URL
    NotFound
    ├── DataFileMissing       a declared data file does not exist
    └── SourceMissing         an s3:// object or https:// URL that is not there (404)
    Unavailable
    └── SourceUnreachable     a source's host, object store or database does not answer
"""

from __future__ import annotations

from pave.errors import InvalidInput, NotFound, Unavailable


class UnsafePath(InvalidInput):
    code = "unsafe_path"


class DataValidationError(InvalidInput):
    code = "data_validation_failed"


class DataFileMissing(NotFound):
    code = "data_file_missing"


class SourceInvalid(InvalidInput):
    code = "data_source_invalid"


class SourceMissing(NotFound):
    code = "data_source_missing"


class SourceUnreachable(Unavailable):
    code = "data_source_unreachable"
