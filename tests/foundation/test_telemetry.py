"""Where traces go (``pave.telemetry.endpoint``), and a wrong endpoint said in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pave import telemetry
from pave.config import Settings
from pave.errors import ConfigError


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PAVE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAVE_HOME", str(tmp_path))
    monkeypatch.setenv("PAVE_CONFIG", str(tmp_path / "none.toml"))


def test_tracing_is_off_unless_an_endpoint_is_set() -> None:
    assert telemetry.endpoint(Settings()) is None
    assert not telemetry.configure(Settings(), "pave-test")
    assert not telemetry.enabled()
    assert telemetry.trace_id() is None
    assert telemetry.traceparent() is None
    assert telemetry.child_environment() == {}
    with telemetry.span("nothing") as span:
        assert span is None


def test_pave_setting_first_then_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/")
    assert telemetry.endpoint(Settings()) == "http://base:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom")
    assert telemetry.endpoint(Settings()) == "http://traces:4318/custom"  # the full URL, as given
    monkeypatch.setenv("PAVE_OTLP_ENDPOINT", "http://pave:4318")
    assert telemetry.endpoint(Settings()) == "http://pave:4318/v1/traces"


@pytest.mark.parametrize("value", ["collector:4318", "grpc://collector:4317", "http://"])
def test_an_endpoint_that_is_not_an_http_url_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pave.config import load_settings

    monkeypatch.setenv("PAVE_OTLP_ENDPOINT", value)
    with pytest.raises(ConfigError, match="otlp_endpoint") as info:
        load_settings()
    assert "http://127.0.0.1:4318" in str(info.value)
