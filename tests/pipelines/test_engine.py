from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pave.pipelines.dag import build_dag
from pave.pipelines.engine import PipelineResult, run_pipeline
from pave.pipelines.errors import PipelineDefinitionError, PipelineStepFailed
from pave.pipelines.spec import ProjectSpec
from pave.pipelines.spec_file import parse_spec

ProjectFactory = Callable[..., Path]

STEPS = """
import logging

from pave.pipelines import StepContext

OFFSET = 1


def helper(x):
    return x + OFFSET


def a(n: int) -> int:
    return helper(n)


def b(x: int, k: int) -> int:
    return x * k


def c(x: int, ctx: StepContext) -> int:
    print("c says hello")
    logging.getLogger("somewhere").warning("a warning from c")
    ctx.logger.info("seed is %s", ctx.seed)
    ctx.log_metric("c_value", x)
    return x - 1


def d() -> str:
    return "independent"
"""

YAML = """
name: demo
seed: 3
steps:
  - {name: a, function: steps:a, params: {n: 1}}
  - {name: b, function: steps:b, inputs: {x: a}, params: {k: 2}}
  - {name: c, function: steps:c, inputs: {x: b}}
  - {name: d, function: steps:d}
"""


def run(root: Path, spec: ProjectSpec | None = None, **kwargs: object) -> PipelineResult:
    spec = spec or parse_spec((root / "pave.yaml").read_text())
    return run_pipeline(
        spec,
        root,
        sources={},
        source_hashes={},
        cache_dir=root / ".cache",
        log_dir=root / ".logs",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def demo(make_project: ProjectFactory) -> Path:
    return make_project({"pave.yaml": YAML, "steps.py": STEPS})


def test_outputs_flow_along_the_dag(demo: Path) -> None:
    result = run(demo)
    assert result.ran == ["a", "b", "c", "d"]
    assert result.output("c") == (1 + 1) * 2 - 1
    assert result.metrics == {"c_value": 4.0}


def test_a_second_run_skips_every_step_and_still_gives_outputs(demo: Path) -> None:
    run(demo)
    again = run(demo)
    assert again.cached == ["a", "b", "c", "d"]
    assert again.ran == []
    assert again.output("c") == 3


def test_changing_a_param_reruns_only_that_step_and_downstream(demo: Path) -> None:
    run(demo)
    (demo / "pave.yaml").write_text(YAML.replace("{k: 2}", "{k: 5}"))
    again = run(demo)
    assert again.ran == ["b", "c"]
    assert again.cached == ["a", "d"]
    assert again.output("c") == 9


def test_editing_a_function_reruns_it_but_comments_do_not(demo: Path) -> None:
    run(demo)
    steps = demo / "steps.py"
    steps.write_text(steps.read_text().replace("    return x * k", "    # times k\n    return x * k"))
    assert run(demo).ran == []
    steps.write_text(steps.read_text().replace("return x * k", "return x * k + 0"))
    assert run(demo).ran == ["b", "c"]


def test_editing_a_helper_reruns_the_steps_that_use_it(demo: Path) -> None:
    run(demo)
    steps = demo / "steps.py"
    steps.write_text(steps.read_text().replace("OFFSET = 1", "OFFSET = 2"))
    assert run(demo).ran == ["a", "b", "c", "d"]  # module-level constants count for every step
    steps.write_text(steps.read_text().replace("return x + OFFSET", "return OFFSET + x"))
    assert run(demo).ran == ["a", "b", "c"]


def test_the_seed_is_part_of_the_key(demo: Path) -> None:
    run(demo)
    (demo / "pave.yaml").write_text(YAML.replace("seed: 3", "seed: 4"))
    assert run(demo).cached == []


def test_from_step_forces_that_step_and_downstream(demo: Path) -> None:
    run(demo)
    again = run(demo, from_step="b")
    assert again.ran == ["b", "c"]
    assert again.record("b").reason == "forced (--from-step)"
    assert again.cached == ["a", "d"]


def test_cache_false_always_runs_the_step(demo: Path) -> None:
    text = YAML.replace("{name: d, function: steps:d}", "{name: d, function: steps:d, cache: false}")
    (demo / "pave.yaml").write_text(text)
    run(demo)
    assert run(demo).ran == ["d"]


def test_no_cache_dir_runs_everything(demo: Path) -> None:
    spec = parse_spec(YAML)
    for _ in range(2):
        result = run_pipeline(spec, demo, sources={}, source_hashes={}, cache_dir=None, log_dir=demo / ".l")
        assert result.ran == ["a", "b", "c", "d"]


def test_step_output_and_logs_are_captured(demo: Path) -> None:
    result = run(demo)
    log = result.record("c").log_path
    assert log is not None
    text = log.read_text()
    assert "c says hello" in text
    assert "a warning from c" in text
    assert "seed is 3" in text


FLAKY = """
from pathlib import Path


def flaky(ctx, fail_times: int) -> str:
    counter = ctx.project_dir / "attempts.txt"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    if n < fail_times:
        raise RuntimeError(f"boom {n}")
    return "ok"


def after(x: str) -> str:
    return x + "!"
"""


def flaky_yaml(retries: int, fail_times: int) -> str:
    return f"""
name: flaky
steps:
  - {{name: first, function: steps:flaky, params: {{fail_times: {fail_times}}}, retries: {retries}}}
  - {{name: second, function: steps:after, inputs: {{x: first}}}}
"""


def test_retries_rerun_a_failing_step(make_project: ProjectFactory) -> None:
    root = make_project({"pave.yaml": flaky_yaml(retries=2, fail_times=2), "steps.py": FLAKY})
    result = run(root)
    assert result.record("first").attempts == 3
    assert result.output("second") == "ok!"
    log = result.record("first").log_path
    assert log is not None
    assert "boom 1" in log.read_text()


def test_a_failing_step_names_itself_and_how_to_resume(make_project: ProjectFactory) -> None:
    root = make_project({"pave.yaml": flaky_yaml(retries=1, fail_times=5), "steps.py": FLAKY})
    with pytest.raises(PipelineStepFailed) as info:
        run(root)
    err = info.value
    assert err.step == "first"
    assert "step first failed after 2 attempt(s): RuntimeError: boom 1" in err.message
    assert err.hint is not None
    assert "pave run --from-step first" in err.hint
    assert [(s.name, s.status) for s in err.result.steps] == [("first", "failed"), ("second", "not run")]


def test_a_cycle_is_named_in_full() -> None:
    spec = parse_spec(
        """
name: loop
steps:
  - {name: a, function: steps:a, inputs: {x: c}}
  - {name: b, function: steps:b, inputs: {x: a}}
  - {name: c, function: steps:c, inputs: {x: b}}
  - {name: d, function: steps:d}
"""
    )
    with pytest.raises(
        PipelineDefinitionError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"
    ):
        build_dag(spec.steps)


def test_topological_order_keeps_the_spec_order_for_ties() -> None:
    spec = parse_spec(
        """
name: order
steps:
  - {name: late, function: m:f, inputs: {x: early}}
  - {name: other, function: m:f}
  - {name: early, function: m:f}
"""
    )
    assert build_dag(spec.steps).names == ["other", "early", "late"]


def test_an_unknown_function_or_argument_is_explained(make_project: ProjectFactory) -> None:
    root = make_project({"pave.yaml": YAML.replace("steps:d}", "steps:nope}"), "steps.py": STEPS})
    with pytest.raises(PipelineDefinitionError, match=r"steps\.py has no 'nope'"):
        run(root)
    (root / "pave.yaml").write_text(YAML.replace("params: {k: 2}", "params: {k: 2, z: 1}"))
    with pytest.raises(PipelineDefinitionError, match="has no parameter"):
        run(root)
    (root / "pave.yaml").write_text(YAML.replace("params: {n: 1}", "params: {}"))
    with pytest.raises(PipelineDefinitionError, match="needs n"):
        run(root)


def test_a_missing_module_is_explained(make_project: ProjectFactory) -> None:
    root = make_project({"pave.yaml": YAML})
    with pytest.raises(PipelineDefinitionError, match="module steps not found"):
        run(root)


def test_the_progress_display_says_what_was_skipped(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(demo, progress=True)
    run(demo, progress=True)
    err = capsys.readouterr().err
    assert "a: ran in" in err
    assert "a: unchanged, skipped (cached)" in err


def test_a_misspelled_step_function_is_matched_against_what_the_file_defines(
    make_project: ProjectFactory,
) -> None:
    root = make_project({"pave.yaml": YAML.replace("steps:c,", "steps:cc,"), "steps.py": STEPS})
    with pytest.raises(PipelineDefinitionError) as info:
        run(root)
    hint = info.value.hint or ""
    assert hint.startswith("did you mean c? steps.py defines a, b, c, d, helper;")
    assert "StepContext" not in hint  # imported, not defined there
    assert "logging" not in hint
