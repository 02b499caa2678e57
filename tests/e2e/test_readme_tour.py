"""The README's five-minute tour, run as written against a fresh platform.

The commands come from the README itself (its first ```bash block under "A five-minute tour", then
the Python blocks that predict with httpx and with tritonclient), so the README and this test
cannot drift apart. What the test changes, and only that: the platform's ports (a free pair
instead of 8000/8080), `source .venv/bin/activate` (this venv), `<RUN_ID>` (the project's
first run, as a reader would copy it from `pave runs`), and the Ray step is tried up to three times
(a new local Ray node has a fixed 30 s to start, which a loaded machine can miss). The tour runs
in one shell, step by step (`set -e`: the first failing step fails the test, and its number is in
the output).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pave_testing import PaveServer

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(2400)]

README = Path(__file__).resolve().parents[2] / "README.md"
FIRST_RUN = (
    "$(pave runs churn --json | python -c \"import json, sys; print(json.load(sys.stdin)[-1]['run_id'])\")"
)


def tour_blocks() -> tuple[str, list[str]]:
    """The tour's bash block and the Python blocks that predict (httpx, then tritonclient)."""
    text = README.read_text()
    tour = text[text.index("## A five-minute tour") : text.index("## Where things are")]
    bash = re.search(r"```bash\n(.*?)```", tour, re.S)
    assert bash is not None, "the tour has no bash block"
    python = [b for b in re.findall(r"```python\n(.*?)```", tour, re.S) if "/infer" in b or "triton" in b]
    assert len(python) == 2, "the tour predicts from Python with httpx and with tritonclient"
    return bash[1], python


def script(bash: str, python: list[str], server: PaveServer) -> str:
    gateway = server.gateway_url.removeprefix("http://")
    control = server.url.removeprefix("http://")
    steps = ["set -eo pipefail"]
    # one step a command; a line ending in a backslash goes on, a line that is only a comment is not a step
    commands: list[str] = []
    pending = ""
    for line in bash.splitlines():
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            commands.append(pending)
            pending = ""
    for number, command in enumerate(commands, 1):
        command = command.replace(
            "source .venv/bin/activate", f"source {Path(sys.executable).parent}/activate"
        )
        command = command.replace("<RUN_ID>", FIRST_RUN)
        command = command.replace("localhost:8080", gateway).replace("127.0.0.1:8000", control)
        steps.append(f"echo '::step {number}::' >&2")
        if "--executor ray" in command:
            # Ray gives a new local node a fixed 30 s to register (ray/_private/node.py): on a loaded
            # machine the first try can run out of it. The same command, at most three times.
            bare = command.split("#")[0].strip()
            command = f"for try in 1 2 3; do {bare} && break; [ $try != 3 ] || exit 1; done\n"
        steps.append(command)
    for number, block in enumerate(python, len(commands) + 1):
        steps.append(f"echo '::step {number}:: python' >&2")
        steps.append(f"python - <<'PYTHON'\n{block.replace('127.0.0.1:8080', gateway)}PYTHON")
    return "\n".join(steps) + "\n"


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    server = PaveServer.up(tmp_path / "home")
    try:
        server.wait_gateway()
        bash, python = tour_blocks()
        env = server.env | {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        log = tmp_path / "tour.log"  # stderr: the step markers and the commands' notes, as they go
        with log.open("w") as err:
            done = subprocess.run(
                ["bash", "-c", script(bash, python, server)],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=2100,
                check=False,
            )
        stderr = log.read_text()
    finally:
        server.stop()
    out = done.stdout + stderr
    steps = re.findall(r"::step (\d+)::", stderr)
    assert done.returncode == 0, f"the tour stopped at step {steps[-1] if steps else '?'}:\n{out[-6000:]}"
    assert "no new version" in out or "unchanged: nothing new registered" in out, out[-6000:]
    assert '"model_name":"churn"' in done.stdout.replace(" ", ""), "the curl prediction answered"
    assert "intact" in out.lower(), "pave audit verify"
    # httpx: the inference id (request.json's "id") and the outputs; tritonclient: the outputs by name
    assert re.search(r"^tour-1 \[\{'name': 'predict'", done.stdout, re.M), done.stdout[-3000:]
    assert re.search(r"^\{'predict': \[\d, \d\], 'predict_proba'", done.stdout, re.M), done.stdout[-3000:]
