"""`pave rollout start --steps` with a value that is not a list of percents: a usage error naming
it (exit 2), not an internal error."""

from __future__ import annotations

from pathlib import Path

from pave_testing import pave_env, run_pave


def test_steps_that_are_not_numbers_are_a_usage_error(tmp_path: Path) -> None:
    result = run_pave(
        "rollout", "start", "churn", "--version", "2", "--steps", "10,abc", env=pave_env(tmp_path)
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    assert "'10,abc' is not a list of percents: write e.g. 10,50,100" in result.stderr
