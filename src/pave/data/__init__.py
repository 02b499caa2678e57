"""Pave data: content-addressed dataset versions, validation (pandera) and profiles.

- :mod:`pave.data.versioning`: ``version_file``, ``stored_file``, ``read_frame``;
- :mod:`pave.data.validation`: ``validate_frame`` (a JSON report) and ``check`` (raise on failure);
- :mod:`pave.data.profile`: ``profile_frame``;
- :mod:`pave.data.paths`: ``project_path`` (a data path that cannot leave the project folder).
"""
