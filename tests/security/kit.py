"""The attack suite's helpers: raw requests and the refusal check."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from pave_testing import PaveServer, World


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def raw(
    server: PaveServer,
    method: str,
    target: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Raw:
    """Send ``target`` byte for byte (no client-side normalisation of ``..`` or percent-escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Authorization": f"Bearer {token or server.token}", **(headers or {})}
    try:
        conn.request(method, target, body=body, headers=sent)
        response = conn.getresponse()
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def assert_refused(
    world: World, status: int, headers: dict[str, str], *, expected: int | None = None
) -> None:
    """A 4xx answer, and an audit record of the attempt."""
    assert 400 <= status < 500, status
    if expected is not None:
        assert status == expected
    records = world.audit(request_id=headers["x-request-id"])
    assert len(records) == 1, "every refused attack leaves one audit record"
    assert records[0]["outcome"] in ("denied", "failed")
