"""Rate limits per token, by role: the limiter alone, then the control plane and the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pave.errors import RateLimited
from pave.governance.ratelimit import RateLimiter
from pave_testing import PaveServer, World


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_holds_to_the_rate() -> None:
    clock = _Clock()
    limiter = RateLimiter({"viewer": 2.0}, burst_seconds=5, clock=clock)
    assert [limiter.retry_after("t", "viewer") for _ in range(10)] == [None] * 10  # 2/s x 5 s
    wait = limiter.retry_after("t", "viewer")
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.retry_after("t", "viewer") is None
    assert limiter.retry_after("other", "viewer") is None, "each token has its own bucket"


def test_unlisted_or_zero_roles_are_unlimited() -> None:
    limiter = RateLimiter({"viewer": 1.0, "admin": 0})
    assert all(limiter.retry_after("a", "admin") is None for _ in range(1000))
    assert all(limiter.retry_after("d", "developer") is None for _ in range(1000))
    assert not RateLimiter({}).enabled


def test_the_refusal_names_the_limit_and_when_to_retry() -> None:
    limiter = RateLimiter({"viewer": 1.0}, burst_seconds=1, clock=_Clock())
    limiter.check("t", "viewer", "ann")
    with pytest.raises(RateLimited) as caught:
        limiter.check("t", "viewer", "ann")
    assert caught.value.status_code == 429
    assert "1 requests per second" in caught.value.message
    assert caught.value.retry_after_header == b"1"


def test_idle_buckets_are_forgotten() -> None:
    clock = _Clock()
    limiter = RateLimiter({"viewer": 1.0}, burst_seconds=1, clock=clock, max_buckets=10)
    for i in range(10):
        limiter.retry_after(i, "viewer")
    clock.now += 5
    limiter.retry_after("new", "viewer")
    assert len(limiter._buckets) == 1


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    server = PaveServer.up(
        Path(tmp_path_factory.mktemp("pave-limited")),
        PAVE_RATE_LIMITS='{"viewer": 1}',
        PAVE_GATEWAY_RATE_LIMITS='{"viewer": 1}',
    )
    yield server
    server.stop()


def _burst(client: httpx.Client, url: str, n: int) -> list[httpx.Response]:
    return [client.get(url) for _ in range(n)]


def test_the_control_plane_answers_429_with_retry_after_per_token(limited: PaveServer) -> None:
    world = World(limited)
    viewer, other = world.token("vic", "viewer"), world.token("val", "viewer")
    with limited.client(viewer) as client:
        answers = _burst(client, "/api/v1/whoami", 15)
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert all(a.status_code == 200 for a in answers[:10]), "a burst of 10 seconds' worth passes"
    assert int(refused[0].headers["retry-after"]) >= 1
    assert refused[0].json()["error"]["code"] == "rate_limited"
    with limited.client(other) as client:
        assert client.get("/api/v1/whoami").status_code == 200, "another token has its own bucket"
    with world.admin() as admin:
        assert all(a.status_code == 200 for a in _burst(admin, "/api/v1/whoami", 20)), "admins are unlimited"
    rows = world.audit(identity="vic")
    assert any(r["status"] == 429 for r in rows)


def test_the_gateway_answers_429_with_retry_after_per_token(limited: PaveServer) -> None:
    world = World(limited)
    viewer = world.token("gwen", "viewer")
    gateway = limited.wait_gateway()
    headers = {"Authorization": f"Bearer {viewer}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        # a model that is not deployed still passes the token check first: 404 until the limit
        answers = _burst(client, "/v2/models/nothing-here", 15)
    codes = [a.status_code for a in answers]
    assert 429 in codes, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
