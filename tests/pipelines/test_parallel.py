"""Independent steps run at the same time (local processes); foreach fans out; timeouts stop a step."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pave.errors import InvalidInput
from pave.pipelines.engine import PipelineResult, run_pipeline
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.executor import LocalExecutor
from pave.pipelines.spec_file import parse_spec

ProjectFactory = Callable[..., Path]

STEPS = """
import os
import time
from pathlib import Path


def wait_for(name: str, other: str, patience: float, marks: str) -> int:
    # Each branch says it started, then waits (bounded) until the other one has started too: it can
    # only see the other's mark if both run at the same time.
    Path(marks, f"{name}.started").write_text(str(os.getpid()))
    deadline = time.monotonic() + patience
    while not Path(marks, f"{other}.started").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{other} never started while {name} ran")
        time.sleep(0.02)
    print(name, "saw", other)
    return os.getpid()


def join(left: int, right: int) -> list:
    return [left, right]


def square(x: int, ctx) -> int:
    ctx.log_metric(f"square_{x}", x * x)
    print("squaring", x)
    return x * x


def total(values: list) -> int:
    return sum(values)


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def busy(seconds: float) -> float:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return time.process_time()
"""


def branches(marks: Path, patience: float = 60, resources: str = "{}") -> str:
    """Two steps that each wait for the other to start (so they pass only when run at once), joined."""
    params = f"patience: {patience}, marks: '{marks}'"
    wait = "function: steps:wait_for"
    return f"""
name: branches
steps:
  - {{name: left, {wait}, params: {{name: left, other: right, {params}}}, resources: {resources}}}
  - {{name: right, {wait}, params: {{name: right, other: left, {params}}}, resources: {resources}}}
  - {{name: both, function: steps:join, inputs: {{left: left, right: right}}}}
"""


def _run(root: Path, text: str, **kwargs: object) -> PipelineResult:
    return run_pipeline(
        parse_spec(text),
        root,
        sources={},
        source_hashes={},
        cache_dir=root / ".cache",
        log_dir=root / ".logs",
        **kwargs,  # type: ignore[arg-type]
    )


def test_independent_branches_run_at_the_same_time_in_processes(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    text = branches(tmp_path)
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    result = _run(root, text, executor=LocalExecutor(capacity=2))
    left, right = result.record("left"), result.record("right")
    assert left.started < right.ended
    assert right.started < left.ended
    pids = result.output("both")
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert left.node == os.uname().nodename
    assert left.cpu_seconds > 0
    assert left.peak_memory > 0
    assert "left saw right" in (root / ".logs" / "left.log").read_text()
    assert result.ran == ["left", "right", "both"]
    again = _run(root, text, executor=LocalExecutor(capacity=2))
    assert again.cached == ["left", "right", "both"]  # the cache works as it did


def test_capacity_one_runs_branches_one_after_the_other(make_project: ProjectFactory, tmp_path: Path) -> None:
    text = branches(tmp_path, patience=1)
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    with pytest.raises(PipelineStepFailed, match="right never started while left ran"):
        _run(root, text, executor=LocalExecutor(capacity=1))


FOREACH = """
name: fan
steps:
  - {name: square, function: steps:square, params: {x: [1, 2, 3, 4]}, foreach: x}
  - {name: total, function: steps:total, inputs: {values: square}}
"""


def test_foreach_fans_out_and_gathers_in_order(make_project: ProjectFactory) -> None:
    root = make_project({"pave.yaml": FOREACH, "steps.py": STEPS})
    result = _run(root, FOREACH, executor=LocalExecutor(capacity=2))
    assert result.output("square") == [1, 4, 9, 16]
    assert result.output("total") == 30
    assert result.record("square").items == 4
    assert result.metrics["square_3"] == 9
    log = (root / ".logs" / "square.log").read_text()
    assert log.index("item 0") < log.index("squaring 1") < log.index("item 3") < log.index("squaring 4")
    again = _run(root, FOREACH, executor=LocalExecutor(capacity=2))
    assert again.cached == ["square", "total"]
    assert again.metrics["square_4"] == 16


def test_a_step_over_its_timeout_is_stopped_and_named(make_project: ProjectFactory) -> None:
    text = """
name: slow
steps:
  - {name: nap, function: steps:slow, params: {seconds: 60}, timeout: 1}
"""
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    with pytest.raises(PipelineStepFailed) as info:
        _run(root, text)
    assert "ran longer than its timeout of 1 s" in info.value.message
    assert "raise `timeout:` of step nap" in (info.value.hint or "")
    assert "stopped" in (root / ".logs" / "nap.log").read_text()


def test_a_step_s_cpu_seconds_match_what_the_kernel_counted(make_project: ProjectFactory) -> None:
    text = """
name: busy
steps:
  - {name: spin, function: steps:busy, params: {seconds: 1.5}, timeout: 120}
"""
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    result = _run(root, text)
    counted = result.output("spin")  # process_time() of the step's own process at its end
    assert result.record("spin").cpu_seconds == pytest.approx(counted, rel=0.25)


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("foreach: y", "foreach names 'y', which is not one of this step's params"),
        ("resources: {cpus: 0}", "greater than 0"),
        ("resources: {memory: lots}", "is not a size"),
        ("timeout: -1", "greater than 0"),
    ],
)
def test_bad_resources_foreach_and_timeout_are_refused_with_their_line(fragment: str, message: str) -> None:
    text = f"""name: bad
steps:
  - name: square
    function: steps:square
    params: {{x: [1, 2]}}
    {fragment}
"""
    with pytest.raises(InvalidInput) as info:
        parse_spec(text)
    assert message in info.value.message
    assert "line " in info.value.message


def test_memory_sizes_are_read_in_bytes() -> None:
    spec = parse_spec(
        "name: mem\nsteps:\n  - {name: a, function: steps:a, resources: {cpus: 2, gpus: 1, memory: 2GiB}}\n"
    )
    assert spec.steps[0].resources.memory_bytes == 2 * 2**30
    assert spec.steps[0].resources.cpus == 2
