"""A section of pave.yaml written as a word, a number or a list where a mapping belongs: the
problem names the line and says to indent its keys under it, not pydantic's class names."""

from __future__ import annotations

import pytest

from pave.errors import InvalidInput
from pave.pipelines.spec_file import parse_spec

BASE = """name: churn
steps:
  - name: train
    function: steps:train
    params: {C: [1.0, 2.0]}
"""


@pytest.mark.parametrize(
    ("text", "line", "said"),
    [
        (BASE + "fairness: yes\n", 6, "not true"),
        (BASE + "tune: fast\n", 6, "not the text 'fast'"),
        (BASE + "tune: [1, 2]\n", 6, "not a list"),
        (BASE + "    resources: 4\n", 6, "not the number 4"),
    ],
)
def test_a_section_that_is_not_a_mapping_is_named_with_its_line(text: str, line: int, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spec(text)
    error = caught.value
    assert f"line {line}, " in error.message
    assert f"must be a mapping of keys (key: value lines under it), {said}" in error.message
    assert "Spec" not in error.message + (error.hint or "")  # no class names
    assert "with its keys indented under it" in (error.hint or "")
