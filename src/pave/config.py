"""Settings: one typed object, ``PAVE_*`` environment variables, one optional TOML file.

Precedence, highest first:

1. arguments passed in code (``Settings(port=9000)``; the CLI's ``--port`` uses this);
2. environment variables ``PAVE_<FIELD>`` (``PAVE_DATABASE_URL``, ``PAVE_PORT``...);
3. the config file: ``PAVE_CONFIG`` if set, else ``$PAVE_HOME/config.toml`` if it exists;
4. the defaults below.

Paths that depend on ``home`` (the database, the artifact root) are derived after the other
sources are merged, so setting only ``PAVE_HOME`` moves everything.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pave.errors import ConfigError

DEFAULT_HOME = Path("~/.pave")
SECRET_FIELDS = frozenset({"database_url", "mlflow_database_url", "oidc_client_secret"})
# The roles a token can carry (pave.governance.roles; the foundation may not import the domain).
TOKEN_ROLES = ("viewer", "developer", "maintainer", "approver", "admin")


class _TomlFile(PydanticBaseSettingsSource):
    """Reads the config file, turning a syntax error into a ConfigError with its line."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"config file {self.path} is not valid TOML: {exc}",
                hint=f"fix that line, or move the file away (mv {self.path} {self.path}.bak)",
            ) from exc
        section = data.get("pave", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {self.path}: [pave] must be a table", hint="see docs/config.md")
        names = self.settings_cls.model_fields
        unknown = sorted(set(section) - set(names))
        if unknown:
            near = [f"{u} -> {m[0]}" for u in unknown if (m := difflib.get_close_matches(u, names, n=1))]
            raise ConfigError(
                f"config file {self.path} has unknown setting(s): {', '.join(unknown)}",
                hint=(f"did you mean {', '.join(near)}? " if near else "")
                + "every setting is listed in docs/config.md",
            )
        return section


def config_file_path() -> Path | None:
    """Where the config file is looked for: ``PAVE_CONFIG``, else ``$PAVE_HOME/config.toml``."""
    explicit = os.environ.get("PAVE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = Path(os.environ.get("PAVE_HOME") or DEFAULT_HOME).expanduser()
    return home / "config.toml"


class Settings(BaseSettings):
    """The effective configuration of one Pave installation."""

    model_config = SettingsConfigDict(env_prefix="PAVE_", extra="forbid", validate_default=True)

    home: Path = Field(default=DEFAULT_HOME, description="Where Pave keeps its state.")
    database_url: str | None = Field(
        default=None, description="Pave's metadata database; default: SQLite file in home."
    )
    mlflow_database_url: str | None = Field(
        default=None,
        description="MLflow's backend store; default: beside Pave's (own SQLite file, or own schema).",
    )
    artifact_root: str | None = Field(default=None, description="Artifacts; default: home/artifacts.")
    model_envs: Path | None = Field(
        default=None,
        description="Per-model virtualenvs, built once per set of requirements; default: home/envs.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description=(
            "What Pave builds once per machine and reuses (MLflow's schema for new stores); "
            "default: $XDG_CACHE_HOME/pave, else ~/.cache/pave."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Interface the control plane binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Control-plane port.")
    gateway_host: str = Field(default="127.0.0.1", description="Interface the inference gateway binds to.")
    gateway_port: int = Field(default=8080, ge=1, le=65535, description="Inference gateway port.")
    gateway_grpc_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        description="Inference gateway's gRPC port (OIP inference.GRPCInferenceService); 0 turns gRPC off.",
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The URL clients and other hosts reach this control plane at (behind a proxy, on another "
            "host); default http://host:port. Listed by `pave status`."
        ),
    )
    gateway_public_url: str | None = Field(
        default=None,
        description=(
            "The URL callers reach this gateway at; default http://gateway_host:gateway_port. The "
            "gateway registers it, and `pave deploy` and `pave status` print it."
        ),
    )
    gateway_workers: int = Field(default=0, ge=0, le=64, description="Gateway processes; 0 = one per core.")
    gateway_auth: Literal["token", "none"] = Field(
        default="token",
        description=(
            "token: model routes and /metrics of the gateway need a Pave token that may read the "
            "project; none: anyone who reaches the gateway may call it (only behind an ingress that "
            "authenticates)."
        ),
    )
    inference_retention_days: float = Field(
        default=30.0,
        ge=1.0,
        le=3650.0,
        description="How long the gateways' inference log, its index and the labels posted for it are kept.",
    )
    inference_log_ship: Literal["auto", "on", "off"] = Field(
        default="auto",
        description=(
            "on: gateways ship their inference log to the object store (an index of its files in the "
            "database) and control planes read it from there, so they need no shared disk; off: "
            "gateways write it into the home that the control plane reads; auto: on when the "
            "artifact root is an object store."
        ),
    )
    inference_log_ship_interval: float = Field(
        default=2.0,
        gt=0.0,
        le=3600.0,
        description="Seconds between two shipped files of a gateway's inference log (its delay, at most).",
    )
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where `pave run` runs pipeline steps: local (this process) or ray (a Ray cluster).",
    )
    executor_address: str | None = Field(
        default=None,
        description=(
            "The Ray cluster for executor = ray: 'auto' (the cluster this machine is part of), "
            "'ray://HEAD:10001' (Ray Client), an address 'HOST:PORT'; unset starts Ray for the run."
        ),
    )
    job_executor: Literal["local", "ray"] = Field(
        default="local",
        description=(
            "Where the platform's jobs (the closed loop's retrains) run: local (a worker process of "
            "its own beside the control plane, outside its process) or ray (a detached actor on the "
            "Ray cluster at executor_address)."
        ),
    )
    job_user: str = Field(
        default="nobody",
        description=(
            "The account a local job runs as when the control plane runs as root (it then cannot "
            "read the control plane's home); a control plane that is not root runs jobs as itself."
        ),
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description=(
            "production refuses to start on insecure settings: allowed_hosts '*', gateway_auth none "
            "off loopback, SQLite behind a non-loopback bind, a public URL that is not https."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="json: one JSON object a line (request and trace ids, an access record a request).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description=(
            "OpenTelemetry tracing: the OTLP/HTTP collector spans are sent to, e.g. "
            "http://127.0.0.1:4318 (POSTed to /v1/traces under it; needs pave[otel]). Unset: "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT if set, else tracing is off."
        ),
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description=(
            "The share of traces started here that are recorded; a request that comes with a "
            "traceparent follows its caller's decision."
        ),
    )
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Request body limit.")
    max_upload_bytes: int = Field(
        default=100 * 1024**3,
        ge=1024,
        description="Body limit of a dataset version or code snapshot sent through the platform.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "[::1]", "testserver"],
        description="Host header allow-list ('*' allows any).",
    )
    prices: dict[str, float] = Field(
        default_factory=lambda: {
            "cpu_hour": 0.05,
            "gpu_hour": 2.5,
            "gb_month": 0.023,
            "million_requests": 0.4,
        },
        description=(
            "The price table of cost accounting (`pave costs`): cpu_hour, gpu_hour, gb_month (stored "
            "bytes), million_requests (served), in one currency."
        ),
    )
    budgets: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Monthly budget per project in the currency of `prices`, e.g. {'churn': 200}; alerts at "
            "80% and 100% go to the project's alert sinks."
        ),
    )
    budget_hard_stop: bool = Field(
        default=False, description="Refuse new runs, tunings and batch jobs of a project over its budget."
    )
    cpu_hours_per_day: dict[str, float] = Field(
        default_factory=dict,
        description="CPU-hours per project per day (UTC), e.g. {'churn': 48}; '*' for every project.",
    )
    rate_limits: dict[str, float] = Field(
        default_factory=lambda: {"viewer": 100.0, "developer": 100.0, "maintainer": 100.0, "approver": 100.0},
        description=(
            "Control-plane requests per second per token, by the token's role (a burst of 10 seconds' "
            "worth is allowed); a role left out, or 0, is unlimited. Over it: 429 with Retry-After."
        ),
    )
    gateway_rate_limits: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(TOKEN_ROLES, 5000.0),
        description=(
            "Inference gateway requests per second per token and gateway process, by role (burst: 10 "
            "seconds' worth); a role left out, or 0, is unlimited. Over it: 429 with Retry-After."
        ),
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="Single sign-on: the OpenID Connect provider's issuer URL (unset: tokens only).",
    )
    oidc_client_id: str | None = Field(default=None, description="This platform's client id at the provider.")
    oidc_client_secret: str | None = Field(
        default=None, description="The client secret (unset: a public client; PKCE is always used)."
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "groups"], description="Scopes asked for."
    )
    oidc_identity_claim: str = Field(
        default="preferred_username", description="The claim that names the Pave identity (else email, sub)."
    )
    oidc_groups_claim: str = Field(default="groups", description="The claim that lists the person's groups.")
    oidc_roles: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Group -> token role of people who sign in by SSO (the highest wins); groups named like "
            "a Pave team also make them its members."
        ),
    )
    oidc_default_role: Literal["viewer", "developer", "maintainer", "approver", "admin"] | None = Field(
        default=None, description="The role of someone none of whose groups is mapped (unset: refused)."
    )
    audit_key_file: Path | None = Field(
        default=None,
        description=(
            "The audit chain's HMAC key (JSON, mode 0600), outside the database; default: home/audit.key, "
            "made on first start. Several control planes on one database share one file (a mounted secret)."
        ),
    )
    egress_allowed_networks: list[str] = Field(
        default_factory=list,
        description=(
            "Private networks outbound requests (alert webhooks, dataset URLs) may reach, as CIDRs or "
            "addresses, e.g. ['10.20.0.0/16'] for an in-cluster receiver. Empty: public addresses only."
        ),
    )

    source_check_interval: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description=(
            "Seconds between two checks of a project's data sources for `retrain: {on: [data_change]}` "
            "(ETag or Last-Modified for s3:// and https://, a checksum of a query's rows)."
        ),
    )
    source_env: list[str] = Field(
        default_factory=list,
        description=(
            "Environment variables of the control plane that data sources may use, e.g. ['WAREHOUSE_URL']: "
            "a SQL source's url: ${VAR} when it is checked for data_change, and the retrains' environment "
            "(AWS_* names here give retrains of s3:// sources those credentials). No other is ever used."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFile(settings_cls, config_file_path())

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url", "mlflow_database_url", mode="after")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(
                "must look like sqlite:////path/to/file.db or postgresql+psycopg://user@host:5432/dbname"
            )
        return value

    @field_validator("otlp_endpoint", mode="after")
    @classmethod
    def _check_otlp(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL such as http://127.0.0.1:4318")
        return value

    @field_validator("oidc_roles", mode="after")
    @classmethod
    def _check_oidc_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for group, role in value.items():
            if role not in TOKEN_ROLES:
                raise ValueError(
                    f"group {group!r} maps to {role!r}, which is not a role ({', '.join(TOKEN_ROLES)})"
                )
        return value

    @field_validator("rate_limits", "gateway_rate_limits", mode="after")
    @classmethod
    def _check_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for role, rate in value.items():
            if role not in TOKEN_ROLES:
                raise ValueError(f"{role!r} is not a role (use {', '.join(TOKEN_ROLES)})")
            if rate < 0:
                raise ValueError(f"the rate of {role} is negative (0 means unlimited)")
        return value

    @field_validator("prices", "budgets", "cpu_hours_per_day", mode="after")
    @classmethod
    def _check_amounts(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        # A negative or infinite budget would open its alerts at once and (hard stop) refuse all work.
        for key, amount in value.items():
            if not math.isfinite(amount) or amount < 0:
                raise ValueError(
                    f"{key} = {amount!r}: {info.field_name} are amounts from 0 "
                    f"(a project left out has {'no limit' if info.field_name != 'prices' else 'price 0'})"
                )
        return value

    @field_validator("egress_allowed_networks", mode="after")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or CIDR such as 10.20.0.0/16") from None
        return value

    # --- derived -------------------------------------------------------------------------------

    @cached_property
    def db_url(self) -> str:
        """Pave's metadata database URL, defaults applied."""
        return self.database_url or f"sqlite:///{self.home / 'pave.db'}"

    @cached_property
    def mlflow_db_url(self) -> str:
        """MLflow's backend store: its own SQLite file, or its own schema on the same server."""
        if self.mlflow_database_url:
            return self.mlflow_database_url
        if self.db_url.startswith("sqlite"):
            return f"sqlite:///{self.home / 'mlflow.db'}"
        return with_search_path(self.db_url, f"{postgres_schema(self.db_url) or 'pave'}_mlflow")

    @cached_property
    def tuning_db_url(self) -> str:
        """Optuna's study storage (``pave tune``): its own SQLite file, or its own schema beside Pave's."""
        if self.db_url.startswith("sqlite"):
            return f"sqlite:///{self.home / 'optuna.db'}"
        return with_search_path(self.db_url, f"{postgres_schema(self.db_url) or 'pave'}_optuna")

    @cached_property
    def artifacts(self) -> str:
        """The artifact root (a local path or an object-store URI)."""
        return self.artifact_root or str(self.home / "artifacts")

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials.json"

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.home / "audit.key"

    @property
    def run_dir(self) -> Path:
        """Pid and state files of running processes."""
        return self.home / "run"

    @property
    def envs_dir(self) -> Path:
        """Where per-model virtualenvs are built (``serving/environments.py``), shared by every gateway
        process of this host and kept across restarts."""
        return self.model_envs or self.home / "envs"

    @property
    def cache_path(self) -> Path:
        """Where Pave keeps what it builds once per machine (``cache_dir``, else the XDG cache)."""
        if self.cache_dir is not None:
            return self.cache_dir.expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "pave"

    @property
    def inference_log_dir(self) -> Path:
        """Where the gateways append their inference log (one JSON-lines file per process)."""
        return self.home / "inference-log"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::") else self.gateway_host  # noqa: S104
        return f"http://{host}:{self.gateway_port}"

    @property
    def advertised_url(self) -> str:
        """Where others reach this control plane: ``public_url``, else :attr:`url`."""
        return (self.public_url or self.url).rstrip("/")

    @property
    def gateway_advertised_url(self) -> str:
        """Where callers reach this gateway: ``gateway_public_url``, else :attr:`gateway_url`."""
        return (self.gateway_public_url or self.gateway_url).rstrip("/")

    def production_problems(
        self, component: Literal["control-plane", "gateway"] = "control-plane"
    ) -> list[ConfigError]:
        """What ``environment = production`` refuses, each with its fix (empty: fine, or development).

        The gateway (``pave serve`` on its own host) is only held to the rule about its own tokens.
        """
        if self.environment != "production":
            return []
        problems: list[ConfigError] = []
        if "*" in self.allowed_hosts:
            problems.append(
                ConfigError(
                    "production refuses allowed_hosts ['*']: any Host header would be served (DNS rebinding)",
                    hint="list the platform's names: PAVE_ALLOWED_HOSTS='[\"pave.example.com\"]'",
                )
            )
        if self.gateway_auth == "none" and not is_loopback(self.gateway_host):
            problems.append(
                ConfigError(
                    f"production refuses gateway_auth none on {self.gateway_host}: anyone who reaches "
                    "the gateway could call every model",
                    hint="PAVE_GATEWAY_AUTH=token, or bind the gateway to 127.0.0.1 behind an "
                    "authenticating ingress",
                )
            )
        if component == "gateway":
            return [p for p in problems if "gateway_auth" in p.message]
        if self.db_url.startswith("sqlite") and not is_loopback(self.host):
            problems.append(
                ConfigError(
                    f"production refuses SQLite behind a non-loopback bind ({self.host}): one file on "
                    "one disk is no shared, backed-up store",
                    hint="PAVE_DATABASE_URL=postgresql+psycopg://USER@HOST:5432/DB",
                )
            )
        url = self.advertised_url
        if not url.startswith("https://"):
            problems.append(
                ConfigError(
                    f"production refuses a plain-HTTP public URL ({url}): tokens and sessions would "
                    "cross the network in clear",
                    hint="serve behind a TLS proxy and set PAVE_PUBLIC_URL=https://pave.example.com",
                )
            )
        return problems

    def check_production(self, component: Literal["control-plane", "gateway"] = "control-plane") -> None:
        """Raise the first problem :meth:`production_problems` finds (start-up calls this)."""
        problems = self.production_problems(component)
        if problems:
            raise problems[0]

    def ensure_home(self) -> None:
        """Create the home and its private folders (mode 0700) before any process writes to them.

        A home that already exists is made private too (jobs and other accounts must not read the
        database, the credentials or the artifacts in it)."""
        for path in (self.home, self.run_dir, self.home / "tmp", self.inference_log_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.home.stat().st_mode & 0o077 and self.home.stat().st_uid == os.geteuid():
            self.home.chmod(0o700)
        if not self.artifacts.partition("://")[1]:
            Path(self.artifacts).mkdir(mode=0o700, parents=True, exist_ok=True)

    def shown(self) -> dict[str, str]:
        """Every effective value as text, secrets (passwords in URLs) masked."""
        values: dict[str, Any] = self.model_dump()
        values["database_url"] = self.db_url
        values["mlflow_database_url"] = self.mlflow_db_url
        values["artifact_root"] = self.artifacts
        out: dict[str, str] = {}
        for key, value in values.items():
            text = ", ".join(value) if isinstance(value, list) else str(value)
            out[key] = mask_url(text) if key in SECRET_FIELDS else text
        return out


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a server on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mask_url(url: str) -> str:
    """``postgresql://bob:secret@db/x`` -> ``postgresql://bob:***@db/x``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def postgres_schema(url: str) -> str | None:
    """The schema named by ``options=-csearch_path=X`` in a PostgreSQL URL, if any."""
    query = urlsplit(url).query
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "options":
            value = value.replace("%3D", "=").replace("%3d", "=")
            if value.startswith("-csearch_path="):
                return value.removeprefix("-csearch_path=").split(",")[0]
    return None


def with_search_path(url: str, schema: str) -> str:
    """The same PostgreSQL URL with its search_path set to ``schema``."""
    parts = urlsplit(url)
    query = [q for q in parts.query.split("&") if q and not q.startswith("options=")]
    query.append(f"options=-csearch_path%3D{schema}")
    return urlunsplit(parts._replace(query="&".join(query)))


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems, fixes = [], []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            origin, fix = _origin(str(err["loc"][0]) if err["loc"] else "", overrides)
            problems.append(f"{name}: {err['msg']}{origin}")
            if fix not in fixes:
                fixes.append(fix)
        raise ConfigError("invalid setting " + "; ".join(problems), hint="; ".join(fixes)) from exc


def _origin(field: str, overrides: dict[str, Any]) -> tuple[str, str]:
    """Where a setting's bad value came from (" (from ...)") and how to fix it there."""
    variable = f"PAVE_{field.upper()}"
    path = config_file_path()
    if field and overrides.get(field) is not None:
        return " (given on the command line)", f"pass another value for {field} on the command line"
    if field and variable in os.environ:
        return f" (from {variable}={os.environ[variable]!r})", f"fix or unset {variable}"
    if path is not None and path.is_file():
        return f" (from {path})", f"fix {field or 'it'} in {path}"
    return "", "check the PAVE_* environment variables and the config file (docs/config.md)"


# --- credentials file ------------------------------------------------------------------------------


def write_credentials(path: Path, url: str, token: str) -> None:
    """Write ``{"url", "token"}`` to ``path`` with mode 0600, atomically."""
    import json

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "token": token}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_credentials(path: Path) -> dict[str, str] | None:
    """The credentials file's content, None if there is none; ConfigError if it is corrupt."""
    import json

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"credentials file {path} is corrupt ({exc.__class__.__name__}: {exc})",
            hint=f"set PAVE_TOKEN instead, or write a new admin token with `pave token bootstrap` "
            f"(it replaces {path.name})",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        raise ConfigError(
            f"credentials file {path} has no 'token' string",
            hint="set PAVE_TOKEN instead, or run `pave token bootstrap`",
        )
    return {k: v for k, v in data.items() if isinstance(v, str)}
