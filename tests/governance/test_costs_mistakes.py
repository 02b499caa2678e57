"""A confused user's cost questions: a `--since` in words or in the future, a project that does not
exist, a budget that cannot be one; each a clear refusal, never an empty answer or a wrong alert."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from pave.config import Settings
from pave.errors import InvalidInput
from pave.governance import costs
from pave_testing import PaveServer

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_since_in_words_or_in_the_future_is_refused_naming_a_date_that_works() -> None:
    with pytest.raises(InvalidInput, match="not an ISO date"):
        costs.parse_since("last week", now=NOW)
    with pytest.raises(InvalidInput, match="in the future") as caught:
        costs.parse_since("2099-01-01", now=NOW)
    assert "--since 2026-12-01" in (caught.value.hint or "")
    assert costs.parse_since("2026-12-01", now=NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert costs.parse_since(None, now=NOW) is None


@pytest.mark.parametrize("field", ["budgets", "cpu_hours_per_day", "prices"])
@pytest.mark.parametrize("amount", [-5.0, math.inf, math.nan])
def test_a_negative_or_infinite_amount_in_the_config_is_refused(field: str, amount: float) -> None:
    with pytest.raises(ValueError, match=f"{field} are amounts from 0"):
        Settings(**{field: {"churn": amount}})
    assert Settings(**{field: {"churn": 0.0}})


def test_the_costs_of_a_project_that_does_not_exist_are_a_404(shared_server: PaveServer) -> None:
    with shared_server.client() as http:
        missing = http.get("/api/v1/projects/no-such-project/costs")
        future = http.get("/api/v1/costs", params={"since": "2999-01-01"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["hint"] == "`pave projects` lists them"
    assert future.status_code == 400, future.text
    assert "in the future" in future.json()["error"]["message"]
