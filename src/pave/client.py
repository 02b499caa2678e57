"""The typed Python SDK: ``pave.Client()`` finds the platform and the token by itself.

Resolution, first match wins: the arguments; ``PAVE_URL`` / ``PAVE_TOKEN``; the credentials file
that ``pave up`` writes (``$PAVE_HOME/credentials.json``); for the URL, the configured host/port.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
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

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/whoami")
        return result

    def list_tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/tokens")
        return result

    def create_token(
        self,
        identity: str,
        name: str,
        *,
        role: str = "developer",
        project: str | None = None,
        expires_in_days: int | None = None,
        kind: str = "user",
    ) -> dict[str, Any]:
        body = {
            "identity": identity,
            "name": name,
            "role": role,
            "project": project,
            "expires_in_days": expires_in_days,
            "kind": kind,
        }
        result: dict[str, Any] = self.request("POST", "/api/v1/tokens", json=body)
        return result

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"/api/v1/tokens/{token_id}")

    # --- projects ------------------------------------------------------------------------------

    def list_projects(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/projects")
        return result

    def get_project(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/projects/{quote(name, safe='')}")
        return result

    def create_project(self, name: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/projects", json={"name": name, **fields})
        return result

    # --- costs -----------------------------------------------------------------------------------

    def record_usage(self, project: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Report what work of ``project`` used: ``[{"kind": "batch", "cpu_seconds": 12.5, ...}]``."""
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/usage", json={"items": items}
        )
        return result

    def costs(self, project: str | None = None, *, since: str | None = None) -> dict[str, Any]:
        """Usage and cost per project, kind and day (every project: platform admins only)."""
        path = "/api/v1/costs" if project is None else f"/api/v1/projects/{quote(project, safe='')}/costs"
        result: dict[str, Any] = self.request("GET", path, params={"since": since} if since else None)
        return result

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
    ) -> dict[str, Any]:
        """Score a table with a registered model of ``project``, here; record the job and its usage.

        The job runs where this client runs (it loads the model: a user's code never runs in the
        control plane); ``input_uri`` and ``output_uri`` are paths or ``s3://BUCKET/KEY``. With
        ``monitor``, a sample of the scored rows goes to the inference log of this installation
        (``Settings.inference_log_dir``) as records of the deployment named after the project.
        """
        import resource

        from pave.serving.batch import record_job, score_table

        self.admit(project)
        os.environ["MLFLOW_TRACKING_TOKEN"] = self.token
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
            monitor_dir=self.settings.inference_log_dir if monitor else None,
            ray=self.settings.executor == "ray",
            ray_address=self.settings.executor_address,
        )
        record_job(result, tracking_uri=self.mlflow_tracking_uri)
        # The whole job as the kernel counts it: this process and the workers it waited for.
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        peak = max(own.ru_maxrss, children.ru_maxrss) * 1024
        self.record_usage(
            project, [{"kind": "batch", "ref": result.run_id or "", "cpu_seconds": cpu, "peak_memory": peak}]
        )
        return result.to_dict()

    def batch_submit(
        self,
        project: str,
        input_uri: str,
        output_uri: str,
        *,
        version: str | None = None,
        alias: str | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Start a batch job on the platform's job executor (not here); returns its key and state.

        ``input_uri`` and ``output_uri`` are ``s3://BUCKET/KEY``; follow it with :meth:`batch_job`.
        """
        body = {
            "input": input_uri,
            "output": output_uri,
            "version": version,
            "alias": alias,
            "workers": workers,
        }
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/batch", json=body
        )
        return result

    def batch_job(self, project: str, key: str) -> dict[str, Any]:
        """A submitted batch job: ``state`` running, succeeded (with ``result``) or failed (``error``)."""
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/batch/jobs/{quote(key, safe='')}"
        )
        return result

    def list_batch_jobs(self, project: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The project's batch jobs, newest first."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/batch", params={"limit": limit}
        )
        return result

    # --- runs and models -----------------------------------------------------------------------

    def list_runs(self, project: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The project's pipeline runs, newest first."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/runs", params={"limit": limit}
        )
        return result

    def load_dataset(self, project: str, source: str, *, run_id: str | None = None) -> Any:
        """The data version of ``source`` that the project's newest finished run used (or ``run_id``'s),
        downloaded through the platform, as a pandas DataFrame (what a notebook starts from)."""
        import tempfile

        from pave.data.versioning import read_frame

        runs = self.list_runs(project, limit=200)
        chosen = [r for r in runs if (r["run_id"] == run_id if run_id else r["status"] == "FINISHED")]
        sha = next((r["data_versions"][source] for r in chosen if source in r.get("data_versions", {})), None)
        if sha is None:
            known = sorted({s for r in runs for s in r.get("data_versions", {})})
            which = f"run {run_id}" if run_id else "finished run"
            hint = f"its sources: {', '.join(known)}" if known else f"`pave run` in {project}'s folder first"
            raise NotFound(f"no {which} of {project} versioned a data source {source!r}", hint=hint)
        with tempfile.TemporaryDirectory(prefix="pave-data-") as folder:
            path = self.get_object(project, "datasets", sha, Path(folder))
            return read_frame(path, path.suffix.lstrip(".") or "csv")

    def list_model_versions(self, project: str) -> list[dict[str, Any]]:
        """The versions of the project's registered model, newest first."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/models"
        )
        return result

    # --- governance: audit, members, policy, approvals -------------------------------------------

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit records (admin): filters identity, project, outcome, since, after_seq, limit."""
        params = {k: v for k, v in filters.items() if v is not None}
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/audit", params=params)
        return result

    def verify_audit(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/audit/verify")
        return result

    def list_members(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/members"
        )
        return result

    def set_member(self, project: str, identity: str, role: str) -> dict[str, Any]:
        path = f"/api/v1/projects/{quote(project, safe='')}/members/{quote(identity, safe='')}"
        result: dict[str, Any] = self.request("PUT", path, json={"role": role})
        return result

    def remove_member(self, project: str, identity: str) -> None:
        path = f"/api/v1/projects/{quote(project, safe='')}/members/{quote(identity, safe='')}"
        self.request("DELETE", path)

    # --- teams: groups of identities holding project roles together -----------------------------

    def list_teams(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/teams")
        return result

    def get_team(self, team: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/teams/{quote(team, safe='')}")
        return result

    def create_team(self, team: str, *, description: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/teams", json={"name": team, "description": description}
        )
        return result

    def delete_team(self, team: str) -> None:
        self.request("DELETE", f"/api/v1/teams/{quote(team, safe='')}")

    def add_team_member(self, team: str, identity: str) -> dict[str, Any]:
        path = f"/api/v1/teams/{quote(team, safe='')}/members/{quote(identity, safe='')}"
        result: dict[str, Any] = self.request("PUT", path)
        return result

    def remove_team_member(self, team: str, identity: str) -> dict[str, Any]:
        path = f"/api/v1/teams/{quote(team, safe='')}/members/{quote(identity, safe='')}"
        result: dict[str, Any] = self.request("DELETE", path)
        return result

    def list_team_roles(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/teams"
        )
        return result

    def set_team_role(self, project: str, team: str, role: str) -> dict[str, Any]:
        """Give every member of ``team`` ``role`` on ``project``."""
        path = f"/api/v1/projects/{quote(project, safe='')}/teams/{quote(team, safe='')}"
        result: dict[str, Any] = self.request("PUT", path, json={"role": role})
        return result

    def remove_team_role(self, project: str, team: str) -> None:
        path = f"/api/v1/projects/{quote(project, safe='')}/teams/{quote(team, safe='')}"
        self.request("DELETE", path)

    def get_policy(self, project: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/projects/{quote(project, safe='')}/policy")
        return result

    def set_policy(self, project: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/projects/{quote(project, safe='')}/policy", json=fields
        )
        return result

    def approve(
        self, project: str, version: str, *, comment: str = "", prompt: str | None = None
    ) -> dict[str, Any]:
        """Approve ``version`` of the project's model (or of its prompt ``prompt``, ``<project>.<name>``)."""
        body: dict[str, Any] = {"version": str(version), "comment": comment}
        if prompt is not None:
            body["prompt"] = prompt
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/approvals", json=body
        )
        return result

    # --- prompts --------------------------------------------------------------------------------

    def evaluate_prompt(self, project_dir: str | Path, prompt: str, version: str | int) -> dict[str, Any]:
        """Evaluate ``version`` of a prompt of the project in ``project_dir`` (its ``pave.yaml``
        ``prompts:``), here: ``mlflow.genai.evaluate``, the gates, the result on the prompt version,
        and the alias moved when every gate passes (docs/prompts.md)."""
        from pave.pipelines.spec import load_spec
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

    def deploy(self, project: str, **options: Any) -> dict[str, Any]:
        """Create or replace the project's deployment (options as in ``pave deploy``)."""
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/projects/{quote(project, safe='')}/deployment", json=options
        )
        return result

    def undeploy(self, project: str) -> None:
        self.request("DELETE", f"/api/v1/projects/{quote(project, safe='')}/deployment")

    def get_deployment(self, project: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/projects/{quote(project, safe='')}/deployment")
        return result

    def list_processes(self) -> list[dict[str, Any]]:
        """The platform's control planes, gateways and workers, each with ``healthy``."""
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/platform/processes")
        return result

    def list_deployments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/deployments")
        return result

    # --- rollouts ------------------------------------------------------------------------------

    def start_rollout(
        self, project: str, version: str, policy: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Roll ``version`` out step by step under guards (policy as in ``deploy.rollout``)."""
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/projects/{quote(project, safe='')}/rollout",
            json={"version": str(version), "policy": policy or {}},
        )
        return result

    def get_rollout(self, project: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/projects/{quote(project, safe='')}/rollout")
        return result

    def promote_rollout(self, project: str, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/rollout/promote", json={"reason": reason}
        )
        return result

    def rollback_rollout(self, project: str, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/rollout/rollback", json={"reason": reason}
        )
        return result

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
    ) -> dict[str, Any]:
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

        result: dict[str, Any] = self.request(
            "PUT",
            self._object_path(project, kind, sha),
            params={"filename": filename or path.name},
            content=chunks(),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            timeout=httpx.Timeout(60.0, read=600.0),
        )
        return result

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

    def record_run(self, project: str, run_id: str) -> dict[str, Any]:
        """Record ``run_id`` as what ``project``'s retrains re-run (``pave run`` does, once finished)."""
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/projects/{quote(project, safe='')}/source", json={"run_id": run_id}
        )
        return result

    def retrain(self, project: str) -> dict[str, Any]:
        """Start a turn of the closed loop now: pave run, gates, progressive rollout."""
        result: dict[str, Any] = self.request("POST", f"/api/v1/projects/{quote(project, safe='')}/retrain")
        return result

    def get_loop(self, project: str, limit: int = 50) -> dict[str, Any]:
        """The run the project retrains from, its retrain policy, and its loop runs (newest first)."""
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/loop", params={"limit": limit}
        )
        return result

    # --- monitoring ----------------------------------------------------------------------------

    def post_feedback(self, labels: dict[str, Any]) -> dict[str, Any]:
        """Attach labels to inference ids (``{inference_id: label}``; a list per multi-row request).

        All or none are stored; posting again for an id replaces its label (the old one is kept).
        """
        items = [{"inference_id": key, "label": value} for key, value in labels.items()]
        result: dict[str, Any] = self.request("POST", "/api/v1/feedback", json={"items": items})
        return result

    def get_monitoring(self, project: str, **params: Any) -> dict[str, Any]:
        """Drift per feature, performance per version and open alerts of the project's deployment."""
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/monitoring", params=params
        )
        return result

    def get_monitoring_series(self, project: str, series: str, **params: Any) -> dict[str, Any]:
        """Time series for plots: ``series`` is ``drift`` (per feature) or ``performance`` (per version)."""
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/monitoring/{series}", params=params
        )
        return result

    def list_alerts(
        self, project: str | None = None, *, include_resolved: bool = False
    ) -> list[dict[str, Any]]:
        """Open alerts (and resolved ones with ``include_resolved``), newest first."""
        params: dict[str, Any] = {"status": "all" if include_resolved else "open"}
        if project:
            params["project"] = project
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/alerts", params=params)
        return result

    def list_incidents(
        self, project: str | None = None, *, include_resolved: bool = False
    ) -> list[dict[str, Any]]:
        """Incidents (one per episode of a monitor's trouble), newest first, with their deliveries."""
        params: dict[str, Any] = {"status": "all" if include_resolved else "open"}
        if project:
            params["project"] = project
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/incidents", params=params)
        return result

    def silence(
        self,
        project: str,
        minutes: float,
        *,
        monitor: str | None = None,
        kind: str | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        """Silence the project's incidents (of one monitor or kind) for ``minutes``."""
        body = {"minutes": minutes, "monitor": monitor, "kind": kind, "reason": reason}
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/projects/{quote(project, safe='')}/silences", json=body
        )
        return result

    def list_silences(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/projects/{quote(project, safe='')}/silences"
        )
        return result

    def end_silence(self, project: str, silence_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "DELETE", f"/api/v1/projects/{quote(project, safe='')}/silences/{silence_id}"
        )
        return result


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
