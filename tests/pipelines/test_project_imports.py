"""A project's modules imported fresh by several runs at once, in threads of one process.

``pave tune`` on Ray runs several trials' runs in threads of the driver; each run forgets the
project's modules and imports them again. One thread forgetting ``steps`` while another was
importing it failed the import with importlib's ``KeyError: 'steps'``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pave.pipelines.modules import project_imports, resolve

# Module-level work widens the window in which another thread can forget the module.
STEPS = """
import time

time.sleep(0.002)


def train():
    return 1
"""


def test_runs_in_threads_import_the_project_fresh_without_racing(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(STEPS)
    errors: list[BaseException] = []
    results: list[int] = []

    def run() -> None:
        try:
            for _ in range(15):
                with project_imports(tmp_path):
                    results.append(resolve("steps:train", tmp_path, what="step")())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [1] * 90
