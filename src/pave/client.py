"""The typed Python SDK: ``pave.Client()`` finds the platform and the token by itself.

Resolution, first match wins: the arguments; ``PAVE_URL`` / ``PAVE_TOKEN``; the credentials file
that ``pave up`` writes (``$PAVE_HOME/credentials.json``); for the URL, the configured host/port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx

from pave import telemetry
from pave.config import Settings, load_settings, read_credentials
from pave.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InternalError,
    InvalidInput,
    NotFound,
    PaveError,
    PayloadTooLarge,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
)
from pave.schemas.access import (
    ApprovalOut,
    AuditRecord,
    AuditVerification,
    MemberOut,
    PolicyOut,
    TeamOut,
    TeamRoleOut,
    TokenCreated,
    TokenOut,
    Whoami,
)
from pave.schemas.common import Wire
from pave.schemas.monitoring import (
    AlertOut,
    DriftSeries,
    FeedbackRecorded,
    IncidentOut,
    MonitoringOverview,
    PerformanceSeries,
    SilenceOut,
)
from pave.schemas.platform import CostReport, ObjectStored, ProcessOut, UsageRecorded
from pave.schemas.projects import LoopOut, LoopRun, LoopSource, ModelVersionOut, ProjectOut, RunOut
from pave.schemas.serving import (
    BatchJobOut,
    BatchMonitoringStored,
    BatchResult,
    BatchRunOut,
    DeploymentOut,
    RolloutOut,
)

M = TypeVar("M", bound=Wire)

_BY_STATUS: dict[int, type[PaveError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: QuotaExceeded,
    500: InternalError,
    503: Unavailable,
}


def _status_filter(project: str | None, include_resolved: bool) -> dict[str, Any]:
    """The query of the alert and incident lists: open ones (or all), of one project or every one."""
    params: dict[str, Any] = {"status": "all" if include_resolved else "open"}
    if project:
        params["project"] = project
    return params


def _error_message(response: httpx.Response) -> str:
    """A gateway's answer in a sentence: its ``{"error": ...}`` or the status."""
    try:
        return f"{response.status_code} {response.json()['error']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason_phrase}"


def _traced(request: httpx.Request) -> None:
    """A request made under a span (a pipeline run's, tracing on) carries it: the control plane's
    span of the request joins the same trace."""
    parent = telemetry.traceparent()
    if parent is not None:
        request.headers["traceparent"] = parent


class Client:
    """A client for the control plane's REST API.

    Args:
        url: the control plane, e.g. ``http://127.0.0.1:8000``.
        token: a Pave API token.
        settings: settings to read defaults from (default: the environment).
        timeout: seconds per request.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 30.0,
    ) -> None:
        settings = settings or load_settings()
        url = url or os.environ.get("PAVE_URL")
        token = token or os.environ.get("PAVE_TOKEN")
        if not (url and token):
            creds = read_credentials(settings.credentials_path) or {}
            url = url or creds.get("url")
            token = token or creds.get("token")
        self.url = (url or settings.url).rstrip("/")
        if not token:
            raise ConfigError(
                "no Pave token found",
                hint=f"set PAVE_TOKEN, or run `pave up` once (it writes {settings.credentials_path})",
            )
        self.token = token
        self.settings = settings
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            event_hooks={"request": [_traced]},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def mlflow_tracking_uri(self) -> str:
        """Give this to ``mlflow.set_tracking_uri`` (with ``MLFLOW_TRACKING_TOKEN`` = the token)."""
        return f"{self.url}/mlflow"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; answer the decoded JSON or raise the matching PaveError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_success:
            return response.json() if response.content else None
        self._raise(response)

    def one(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """Call the API; answer its JSON object as ``model``."""
        return model.model_validate(self.request(method, path, **kwargs))

    def many(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        """Call the API; answer its JSON array as a list of ``model``."""
        return [model.model_validate(item) for item in self.request(method, path, **kwargs)]

    def _unreachable(self, exc: Exception) -> Unavailable:
        return Unavailable(
            f"no Pave control plane answers at {self.url} ({exc.__class__.__name__})",
            hint="start it with `pave up`, or set PAVE_URL",
        )

    def _raise(self, response: httpx.Response) -> NoReturn:
        try:
            body = response.json()["error"]
            message, hint, details = body.get("message", ""), body.get("hint"), body.get("details")
        except (ValueError, KeyError, TypeError):
            message, hint, details = response.text[:500] or response.reason_phrase, None, None
        error_class = _BY_STATUS.get(response.status_code, PaveError)
        raise error_class(message, hint=hint, details=details)

    # --- identity and tokens -------------------------------------------------------------------

    def whoami(self) -> Whoami:
        return self.one(Whoami, "GET", "/api/v1/whoami")

    def list_tokens(self) -> list[TokenOut]:
        return self.many(TokenOut, "GET", "/api/v1/tokens")

    def create_token(
        self,
        identity: str,
        name: str,
        *,
        role: str = "developer",
        project: str | None = None,
        expires_in_days: int | None = None,
        kind: str = "user",
    ) -> TokenCreated:
        body = {
            "identity": identity,
            "name": name,
            "role": role,
            "project": project,
            "expires_in_days": expires_in_days,
            "kind": kind,
        }
        return self.one(TokenCreated, "POST", "/api/v1/tokens", json=body)

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"/api/v1/tokens/{token_id}")

    # --- projects ------------------------------------------------------------------------------

    def list_projects(self) -> list[ProjectOut]:
        return self.many(ProjectOut, "GET", "/api/v1/projects")

    def get_project(self, name: str) -> ProjectOut:
        return self.one(ProjectOut, "GET", f"/api/v1/projects/{quote(name, safe='')}")

    def create_project(self, name: str, **fields: Any) -> ProjectOut:
        return self.one(ProjectOut, "POST", "/api/v1/projects", json={"name": name, **fields})

    # --- costs -----------------------------------------------------------------------------------

    def record_usage(self, project: str, items: list[dict[str, Any]]) -> UsageRecorded:
        """Report what work of ``project`` used: ``[{"kind": "batch", "cpu_seconds": 12.5, ...}]``."""
        return self.one(
            UsageRecorded, "POST", f"/api/v1/projects/{quote(project, safe='')}/usage", json={"items": items}
        )

    def costs(self, project: str | None = None, *, since: str | None = None) -> CostReport:
        """Usage and cost per project, kind and day (every project: platform admins only)."""
        path = "/api/v1/costs" if project is None else f"/api/v1/projects/{quote(project, safe='')}/costs"
        return self.one(CostReport, "GET", path, params={"since": since} if since else None)

    def admit(self, project: str) -> None:
        """Raise QuotaExceeded when ``project`` is over its CPU-hour quota or (hard stop) its budget."""
        self.request("GET", f"/api/v1/projects/{quote(project, safe='')}/costs/admit")

    def batch(
        self,
        project: str,
        input_uri: str,
        output_uri: str,
        *,
        version: str | None = None,
        alias: str | None = None,
        workers: int | None = None,
        progress: Any = None,
        monitor: bool = False,
    ) -> BatchResult:
        """Score a table with a registered model of ``project``, here; record the job and its usage.

        The job runs where this client runs (it loads the model: a user's code never runs in the
        control plane); ``input_uri`` and ``output_uri`` are paths or ``s3://BUCKET/KEY``. With
        ``monitor``, a sample of the scored rows is sent to the control plane, which stores it in
        the project's inference log (as records of the deployment named after the project) for
        its monitors, wherever this client runs.
        """
        import resource
        import tempfile

        from pave.serving.batch import record_job, score_table

        self.admit(project)
        os.environ["MLFLOW_TRACKING_TOKEN"] = self.token
        with tempfile.TemporaryDirectory(prefix="pave-batch-log-") as spool:
            result = score_table(
                project,
                input_uri=input_uri,
                output_uri=output_uri,
                tracking_uri=self.mlflow_tracking_uri,
                cache_dir=self.settings.home / "cache" / "batch-models",
                version=version,
                alias=alias,
                workers=workers,
                progress=progress,
                monitor_dir=Path(spool) if monitor else None,
                ray=self.settings.executor == "ray",
                ray_address=self.settings.executor_address,
            )
            record_job(result, tracking_uri=self.mlflow_tracking_uri)
            monitored = self._store_batch_records(project, Path(spool)) if monitor else None
        # The whole job as the kernel counts it: this process and the workers it waited for.
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        peak = max(own.ru_maxrss, children.ru_maxrss) * 1024
        self.record_usage(
            project, [{"kind": "batch", "ref": result.run_id or "", "cpu_seconds": cpu, "peak_memory": peak}]
        )
        return BatchResult.model_validate(result.to_dict() | {"monitored": monitored})

    def _store_batch_records(self, project: str, directory: Path) -> int:
        """Send the log files a batch job wrote to ``directory`` to the project's monitors; the rows."""
        from pave.serving.batch_monitor import request_bodies

        path, rows = f"/api/v1/projects/{quote(project, safe='')}/batch/monitoring", 0
        for body in request_bodies(directory):
            headers = {"content-type": "application/json"}
            rows += self.one(BatchMonitoringStored, "POST", path, content=body, headers=headers).rows
        return rows

    def batch_submit(
        self,
        project: str,
        input_uri: str,
        output_uri: str,
        *,
        version: str | None = None,
        alias: str | None = None,
        workers: int | None = None,
        monitor: bool = False,
    ) -> BatchJobOut:
        """Start a batch job on the platform's job executor (not here); returns its key and state.

        ``input_uri`` and ``output_uri`` are ``s3://BUCKET/KEY``; follow it with :meth:`batch_job`.
        With ``monitor``, the job feeds a sample of the scored rows to the project's monitors.
        """
        body = {
            "input": input_uri,
            "output": output_uri,
            "version": version,
            "alias": alias,
            "workers": workers,
            "monitor": monitor,
        }
        return self.one(BatchJobOut, "POST", f"/api/v1/projects/{quote(project, safe='')}/batch", json=body)

    def batch_job(self, project: str, key: str) -> BatchJobOut:
        """A submitted batch job: ``state`` running, succeeded (with ``result``) or failed (``error``)."""
        return self.one(
            BatchJobOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/batch/jobs/{quote(key, safe='')}"
        )

    def list_batch_jobs(self, project: str, *, limit: int = 50) -> list[BatchRunOut]:
        """The project's batch jobs, newest first."""
        return self.many(
            BatchRunOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/batch", params={"limit": limit}
        )

    # --- runs and models -----------------------------------------------------------------------

    def list_runs(self, project: str, *, limit: int = 50) -> list[RunOut]:
        """The project's pipeline runs, newest first."""
        return self.many(
            RunOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/runs", params={"limit": limit}
        )

    def load_dataset(self, project: str, source: str, *, run_id: str | None = None) -> Any:
        """The data version of ``source`` that the project's newest finished run used (or ``run_id``'s),
        downloaded through the platform, as a pandas DataFrame (what a notebook starts from)."""
        import tempfile

        from pave.data.versioning import read_frame

        runs = self.list_runs(project, limit=200)
        chosen = [r for r in runs if (r.run_id == run_id if run_id else r.status == "FINISHED")]
        sha = next((r.data_versions[source] for r in chosen if source in r.data_versions), None)
        if sha is None:
            known = sorted({s for r in runs for s in r.data_versions})
            which = f"run {run_id}" if run_id else "finished run"
            hint = f"its sources: {', '.join(known)}" if known else f"`pave run` in {project}'s folder first"
            raise NotFound(f"no {which} of {project} versioned a data source {source!r}", hint=hint)
        with tempfile.TemporaryDirectory(prefix="pave-data-") as folder:
            path = self.get_object(project, "datasets", sha, Path(folder))
            return read_frame(path, path.suffix.lstrip(".") or "csv")

    def list_model_versions(self, project: str) -> list[ModelVersionOut]:
        """The versions of the project's registered model, newest first."""
        return self.many(ModelVersionOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/models")

    # --- governance: audit, members, policy, approvals -------------------------------------------

    def audit(self, **filters: Any) -> list[AuditRecord]:
        """Audit records (admin): filters identity, project, outcome, since, after_seq, limit."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.many(AuditRecord, "GET", "/api/v1/audit", params=params)

    def verify_audit(self) -> AuditVerification:
        return self.one(AuditVerification, "GET", "/api/v1/audit/verify")

    def list_members(self, project: str) -> list[MemberOut]:
        return self.many(MemberOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/members")

    def set_member(self, project: str, identity: str, role: str) -> MemberOut:
        path = f"/api/v1/projects/{quote(project, safe='')}/members/{quote(identity, safe='')}"
        return self.one(MemberOut, "PUT", path, json={"role": role})

    def remove_member(self, project: str, identity: str) -> None:
        path = f"/api/v1/projects/{quote(project, safe='')}/members/{quote(identity, safe='')}"
        self.request("DELETE", path)

    # --- teams: groups of identities holding project roles together -----------------------------

    def list_teams(self) -> list[TeamOut]:
        return self.many(TeamOut, "GET", "/api/v1/teams")

    def get_team(self, team: str) -> TeamOut:
        return self.one(TeamOut, "GET", f"/api/v1/teams/{quote(team, safe='')}")

    def create_team(self, team: str, *, description: str = "") -> TeamOut:
        return self.one(TeamOut, "POST", "/api/v1/teams", json={"name": team, "description": description})

    def delete_team(self, team: str) -> None:
        self.request("DELETE", f"/api/v1/teams/{quote(team, safe='')}")

    def add_team_member(self, team: str, identity: str) -> TeamOut:
        path = f"/api/v1/teams/{quote(team, safe='')}/members/{quote(identity, safe='')}"
        return self.one(TeamOut, "PUT", path)

    def remove_team_member(self, team: str, identity: str) -> TeamOut:
        path = f"/api/v1/teams/{quote(team, safe='')}/members/{quote(identity, safe='')}"
        return self.one(TeamOut, "DELETE", path)

    def list_team_roles(self, project: str) -> list[TeamRoleOut]:
        return self.many(TeamRoleOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/teams")

    def set_team_role(self, project: str, team: str, role: str) -> TeamRoleOut:
        """Give every member of ``team`` ``role`` on ``project``."""
        path = f"/api/v1/projects/{quote(project, safe='')}/teams/{quote(team, safe='')}"
        return self.one(TeamRoleOut, "PUT", path, json={"role": role})

    def remove_team_role(self, project: str, team: str) -> None:
        path = f"/api/v1/projects/{quote(project, safe='')}/teams/{quote(team, safe='')}"
        self.request("DELETE", path)

    def get_policy(self, project: str) -> PolicyOut:
        return self.one(PolicyOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/policy")

    def set_policy(self, project: str, **fields: Any) -> PolicyOut:
        return self.one(PolicyOut, "PUT", f"/api/v1/projects/{quote(project, safe='')}/policy", json=fields)

    def approve(
        self, project: str, version: str, *, comment: str = "", prompt: str | None = None
    ) -> ApprovalOut:
        """Approve ``version`` of the project's model (or of its prompt ``prompt``, ``<project>.<name>``)."""
        body: dict[str, Any] = {"version": str(version), "comment": comment}
        if prompt is not None:
            body["prompt"] = prompt
        return self.one(
            ApprovalOut, "POST", f"/api/v1/projects/{quote(project, safe='')}/approvals", json=body
        )

    # --- prompts --------------------------------------------------------------------------------

    def evaluate_prompt(self, project_dir: str | Path, prompt: str, version: str | int) -> dict[str, Any]:
        """Evaluate ``version`` of a prompt of the project in ``project_dir`` (its ``pave.yaml``
        ``prompts:``), here: ``mlflow.genai.evaluate``, the gates, the result on the prompt version,
        and the alias moved when every gate passes (docs/prompts.md)."""
        from pave.pipelines.spec_file import load_spec
        from pave.registry.prompts import evaluate_prompt

        folder = Path(project_dir)
        spec = load_spec(folder)
        os.environ["MLFLOW_TRACKING_TOKEN"] = self.token  # MLflow's client authenticates with it
        return evaluate_prompt(
            spec, folder, prompt, str(version), tracking_uri=self.mlflow_tracking_uri
        ).to_dict()

    def promote_prompt(self, name: str, version: str | int, *, alias: str = "production") -> None:
        """Point ``alias`` of prompt ``name`` (``<project>.<prompt>``) at a version whose gates passed."""
        from pave.registry.prompts import promote

        os.environ["MLFLOW_TRACKING_TOKEN"] = self.token
        promote(name, str(version), alias, tracking_uri=self.mlflow_tracking_uri)

    # --- deployments ---------------------------------------------------------------------------

    def deploy(self, project: str, **options: Any) -> DeploymentOut:
        """Create or replace the project's deployment (options as in ``pave deploy``)."""
        return self.one(
            DeploymentOut, "PUT", f"/api/v1/projects/{quote(project, safe='')}/deployment", json=options
        )

    def undeploy(self, project: str) -> None:
        self.request("DELETE", f"/api/v1/projects/{quote(project, safe='')}/deployment")

    def get_deployment(self, project: str) -> DeploymentOut:
        return self.one(DeploymentOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/deployment")

    def wait_served(self, gateway: str, deployment: str, versions: list[str], timeout: float) -> None:
        """Return once the gateway at ``gateway`` serves each version of the deployment.

        Polls ``GET /v2/models/NAME/versions/V/ready``, which answers 200 only when every worker
        process of that gateway has the version loaded (docs/serving.md, Readiness).

        Raises:
            Unavailable: still not ready after ``timeout`` seconds; the message has its last answer.
        """
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.token}"}
        pending = list(versions)
        last = "no answer yet"
        with httpx.Client(base_url=gateway.rstrip("/"), headers=headers, timeout=10.0) as http:
            while pending:
                path = f"/v2/models/{quote(deployment, safe='')}/versions/{quote(pending[0], safe='')}/ready"
                try:
                    response = http.get(path)
                except httpx.TransportError as exc:
                    response, last = None, f"no answer ({type(exc).__name__})"
                if response is not None and response.status_code == 200:
                    pending.pop(0)
                    continue
                if response is not None:
                    last = _error_message(response)
                    if response.headers.get("pave-load-failed"):  # serving.readiness.LOAD_FAILED_HEADER
                        raise Unavailable(
                            f"gateway {gateway} could not load '{deployment}' version {pending[0]}: {last}",
                            hint="fix the model (the gateway's log has the traceback: `pave status` names "
                            "the gateway) and deploy again, or deploy another version",
                        )
                if time.monotonic() >= deadline:
                    raise Unavailable(
                        f"gateway {gateway} does not serve '{deployment}' version {pending[0]} after "
                        f"{timeout:g}s: {last}",
                        hint="look at the gateway's log (`pave status` names it; under `pave up`: "
                        "$PAVE_HOME/logs/gateway.log); the deployment stays in place",
                    )
                time.sleep(0.2)

    def list_processes(self) -> list[ProcessOut]:
        """The platform's control planes, gateways and workers, each with ``healthy``."""
        return self.many(ProcessOut, "GET", "/api/v1/platform/processes")

    def list_deployments(self) -> list[DeploymentOut]:
        return self.many(DeploymentOut, "GET", "/api/v1/deployments")

    # --- rollouts ------------------------------------------------------------------------------

    def start_rollout(self, project: str, version: str, policy: dict[str, Any] | None = None) -> RolloutOut:
        """Roll ``version`` out step by step under guards (policy as in ``deploy.rollout``)."""
        return self.one(
            RolloutOut,
            "POST",
            f"/api/v1/projects/{quote(project, safe='')}/rollout",
            json={"version": str(version), "policy": policy or {}},
        )

    def get_rollout(self, project: str) -> RolloutOut:
        return self.one(RolloutOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/rollout")

    def promote_rollout(self, project: str, reason: str = "") -> RolloutOut:
        return self.one(
            RolloutOut,
            "POST",
            f"/api/v1/projects/{quote(project, safe='')}/rollout/promote",
            json={"reason": reason},
        )

    def rollback_rollout(self, project: str, reason: str = "") -> RolloutOut:
        return self.one(
            RolloutOut,
            "POST",
            f"/api/v1/projects/{quote(project, safe='')}/rollout/rollback",
            json={"reason": reason},
        )

    # --- content-addressed objects: dataset versions and code snapshots -------------------------

    def _object_path(self, project: str, kind: str, sha: str) -> str:
        return f"/api/v1/projects/{quote(project, safe='')}/{kind}/{sha}"

    def has_object(self, project: str, kind: str, sha: str) -> bool:
        """Whether ``project`` stored the object (a HEAD: nothing is downloaded)."""
        try:
            response = self._http.head(self._object_path(project, kind, sha))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code == 404:
            return False
        if not response.is_success:
            self._raise(response)
        return True

    def put_object(
        self,
        project: str,
        kind: str,
        sha: str,
        path: Path,
        *,
        filename: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ObjectStored:
        """Send the file ``path`` (whose sha256 is ``sha``) as the project's object, streamed."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    sent += len(chunk)
                    yield chunk
                    if on_progress is not None:
                        on_progress(sent, size)

        return self.one(
            ObjectStored,
            "PUT",
            self._object_path(project, kind, sha),
            params={"filename": filename or path.name},
            content=chunks(),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            timeout=httpx.Timeout(60.0, read=600.0),
        )

    def get_object(self, project: str, kind: str, sha: str, folder: Path) -> Path:
        """Download the project's object into ``folder`` under its stored file name."""
        from pave.data.objects import check_filename

        try:
            with self._http.stream("GET", self._object_path(project, kind, sha)) as response:
                if not response.is_success:
                    response.read()
                    self._raise(response)
                target = folder / check_filename(response.headers.get("x-pave-filename", "object"))
                folder.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.part")
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                partial.replace(target)
                return target
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def objects(
        self, project: str, *, on_progress: Callable[[int, int], None] | None = None
    ) -> PlatformObjects:
        """The project's object store through the platform (for ``execute_project`` and ``reproduce``)."""
        return PlatformObjects(self, project, on_progress=on_progress)

    # --- the closed loop: retraining -----------------------------------------------------------

    def record_run(self, project: str, run_id: str) -> LoopSource:
        """Record ``run_id`` as what ``project``'s retrains re-run (``pave run`` does, once finished)."""
        return self.one(
            LoopSource, "PUT", f"/api/v1/projects/{quote(project, safe='')}/source", json={"run_id": run_id}
        )

    def retrain(self, project: str) -> LoopRun:
        """Start a turn of the closed loop now: pave run, gates, progressive rollout."""
        return self.one(LoopRun, "POST", f"/api/v1/projects/{quote(project, safe='')}/retrain")

    def get_loop(self, project: str, limit: int = 50) -> LoopOut:
        """The run the project retrains from, its retrain policy, and its loop runs (newest first)."""
        return self.one(
            LoopOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/loop", params={"limit": limit}
        )

    # --- monitoring ----------------------------------------------------------------------------

    def post_feedback(self, labels: dict[str, Any]) -> FeedbackRecorded:
        """Attach labels to inference ids (``{inference_id: label}``; a list per multi-row request).

        All or none are stored; posting again for an id replaces its label (the old one is kept).
        """
        items = [{"inference_id": key, "label": value} for key, value in labels.items()]
        return self.one(FeedbackRecorded, "POST", "/api/v1/feedback", json={"items": items})

    def get_monitoring(self, project: str, **params: Any) -> MonitoringOverview:
        """Drift per feature, performance per version and open alerts of the project's deployment."""
        return self.one(
            MonitoringOverview, "GET", f"/api/v1/projects/{quote(project, safe='')}/monitoring", params=params
        )

    def get_monitoring_series(
        self, project: str, series: str, **params: Any
    ) -> DriftSeries | PerformanceSeries:
        """Time series for plots: ``series`` is ``drift`` (per feature) or ``performance`` (per version)."""
        model: type[DriftSeries | PerformanceSeries] = DriftSeries if series == "drift" else PerformanceSeries
        return self.one(
            model, "GET", f"/api/v1/projects/{quote(project, safe='')}/monitoring/{series}", params=params
        )

    def list_alerts(self, project: str | None = None, *, include_resolved: bool = False) -> list[AlertOut]:
        """Open alerts (and resolved ones with ``include_resolved``), newest first."""
        return self.many(AlertOut, "GET", "/api/v1/alerts", params=_status_filter(project, include_resolved))

    def list_incidents(
        self, project: str | None = None, *, include_resolved: bool = False
    ) -> list[IncidentOut]:
        """Incidents (one per episode of a monitor's trouble), newest first, with their deliveries."""
        return self.many(
            IncidentOut, "GET", "/api/v1/incidents", params=_status_filter(project, include_resolved)
        )

    def silence(
        self,
        project: str,
        minutes: float,
        *,
        monitor: str | None = None,
        kind: str | None = None,
        reason: str = "",
    ) -> SilenceOut:
        """Silence the project's incidents (of one monitor or kind) for ``minutes``."""
        body = {"minutes": minutes, "monitor": monitor, "kind": kind, "reason": reason}
        return self.one(SilenceOut, "POST", f"/api/v1/projects/{quote(project, safe='')}/silences", json=body)

    def list_silences(self, project: str) -> list[SilenceOut]:
        return self.many(SilenceOut, "GET", f"/api/v1/projects/{quote(project, safe='')}/silences")

    def end_silence(self, project: str, silence_id: int) -> SilenceOut:
        return self.one(
            SilenceOut, "DELETE", f"/api/v1/projects/{quote(project, safe='')}/silences/{silence_id}"
        )


class PlatformObjects:
    """A project's :class:`~pave.data.objects.ObjectStore` through the platform's routes: a client
    needs no object-store credentials, only its token (read to fetch, write to store)."""

    def __init__(
        self, client: Client, project: str, *, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.client = client
        self.project = project
        self.on_progress = on_progress

    def has(self, kind: str, sha: str) -> bool:
        return self.client.has_object(self.project, kind, sha)

    def put(self, kind: str, sha: str, path: Path, manifest: dict[str, Any]) -> None:
        filename = str(manifest.get("filename") or path.name)
        self.client.put_object(self.project, kind, sha, path, filename=filename, on_progress=self.on_progress)

    def fetch(self, kind: str, sha: str, folder: Path) -> Path:
        from pave.storage import ObjectMissing

        try:
            return self.client.get_object(self.project, kind, sha, folder)
        except NotFound as error:
            raise ObjectMissing(error.message, hint=error.hint) from None
