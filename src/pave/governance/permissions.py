"""The one permission table: every route of the control plane maps to the action it needs.

The first rule whose method and path pattern match decides. A request that no rule covers is
denied: adding a route without adding its rule here fails closed (and a test enumerates every
route of the running app, MLflow's included, to catch it before users do).

The action a rule names is checked against the caller's effective actions on the project the
request concerns (:mod:`pave.governance.access`, :mod:`pave.governance.scope`). One override,
:func:`escalated_action`: setting or moving the ``champion`` alias (or MLflow's legacy stage
``Production``) needs ``approve``, because that is what puts a version in production.

Adding a route (every new route needs its rule, or the gate denies it):

1. add one line to :data:`RULES`, above any broader rule its path also matches (the first match
   decides): ``_rule("GET HEAD", r"/api/v1/projects/[^/]+/things", "read")``. Methods are
   space-separated; the pattern must match the whole path; the action is one of ``read``,
   ``write``, ``deploy``, ``approve``, ``manage``, ``admin``, or :data:`PUBLIC` (no token) /
   :data:`DISABLED` (nobody);
2. if the route names no project in a way :func:`pave.governance.scope.resolve` finds (a path
   under ``/api/v1/projects/{name}``, an MLflow id), either teach scope where its project is, or,
   for a route that truly concerns no project, pass ``is_global=True`` (otherwise the request is
   denied as unattributable);
3. add a test that a caller without a role on the project is refused
   (``tests/governance/test_access.py`` calls every route of the app with each role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pave.errors import Forbidden
from pave.governance.approvals import PRODUCTION_ALIASES
from pave.governance.tokens import Principal

PUBLIC = "public"  # no token needed
DISABLED = "disabled"  # nobody, admins included: a feature of MLflow that Pave switches off


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    action: str
    # A global route concerns no project (platform-wide objects, the UI shell); on any other route
    # a request whose project cannot be told is denied.
    is_global: bool = False

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and self.pattern.fullmatch(path) is not None


def _rule(methods: str, pattern: str, action: str, *, is_global: bool = False) -> Rule:
    return Rule(frozenset(methods.split()), re.compile(pattern), action, is_global)


_READ = "GET HEAD"
_WRITE = "POST PUT PATCH DELETE"

RULES: tuple[Rule, ...] = (
    # --- probes ---------------------------------------------------------------------------------
    _rule(_READ, r"/healthz|/readyz", PUBLIC),
    _rule(_READ, r"/metrics", "read"),
    # --- Pave API -------------------------------------------------------------------------------
    _rule(_READ, r"/api/v1/openapi\.json|/api/v1/docs(/.*)?", "read"),
    _rule(_READ, r"/api/v1/whoami", "read"),
    # the Pave wheel a generated project's CI installs (pave.templates.wheel)
    _rule(_READ, r"/api/v1/client/wheel", "read", is_global=True),
    _rule(_READ + " " + _WRITE, r"/api/v1/tokens(/\d+)?", "admin"),
    _rule(_READ, r"/api/v1/audit(/verify)?", "admin"),
    _rule(_READ, r"/api/v1/projects/[^/]+/members", "manage"),
    _rule(_READ, r"/api/v1/projects/[^/]+/(policy|approvals(/[^/]+)?)", "read"),
    _rule("PUT DELETE", r"/api/v1/projects/[^/]+/members/[^/]+", "manage"),
    _rule(_READ, r"/api/v1/projects/[^/]+/teams", "manage"),
    _rule("PUT DELETE", r"/api/v1/projects/[^/]+/teams/[^/]+", "manage"),
    # Teams list identities and the projects they hold roles on: admins only.
    _rule(_READ + " POST", r"/api/v1/teams", "admin"),
    _rule(_READ + " DELETE", r"/api/v1/teams/[^/]+", "admin"),
    _rule("PUT DELETE", r"/api/v1/teams/[^/]+/members/[^/]+", "admin"),
    _rule("PUT", r"/api/v1/projects/[^/]+/policy", "admin"),
    _rule("POST", r"/api/v1/projects/[^/]+/approvals", "approve"),
    _rule(_READ, r"/api/v1/projects(/[^/]+(/runs|/models|/deployment)?)?", "read"),
    _rule("PUT DELETE", r"/api/v1/projects/[^/]+/deployment", "deploy"),
    _rule(_READ, r"/api/v1/projects/[^/]+/rollout", "read"),
    _rule("POST", r"/api/v1/projects/[^/]+/rollout(/promote|/rollback)?", "deploy"),
    _rule(_READ, r"/api/v1/deployments", "read"),
    _rule(_READ, r"/api/v1/projects/[^/]+/loop", "read"),
    _rule("PUT", r"/api/v1/projects/[^/]+/source", "write"),
    _rule("POST", r"/api/v1/projects/[^/]+/retrain", "deploy"),
    # Content-addressed objects: dataset versions and code snapshots (raw bytes up and down).
    _rule(_READ, r"/api/v1/projects/[^/]+/(datasets|code)/[^/]+", "read"),
    _rule("PUT", r"/api/v1/projects/[^/]+/(datasets|code)/[^/]+", "write"),
    _rule(_READ, r"/api/v1/platform/metrics", "read"),  # aggregates only, no project's details
    # Where the control planes and gateways answer: what a caller needs to reach them.
    _rule(_READ, r"/api/v1/platform/processes", "read"),
    # Feedback names inference ids, not a project: the route checks write on each id's project.
    _rule("POST", r"/api/v1/feedback", "write"),
    _rule(_READ, r"/api/v1/alerts", "read"),
    _rule(_READ, r"/api/v1/incidents", "read"),  # filtered item by item
    _rule(_READ, r"/api/v1/projects/[^/]+/(monitoring(/[a-z-]+)?|alerts|incidents|silences)", "read"),
    # Silencing a project's pages is an operator's decision, like changing its traffic.
    _rule("POST", r"/api/v1/projects/[^/]+/silences", "deploy"),
    _rule("DELETE", r"/api/v1/projects/[^/]+/silences/\d+", "deploy"),
    _rule("POST", r"/api/v1/projects/[^/]+/usage", "write"),
    _rule(_READ, r"/api/v1/projects/[^/]+/costs(/admit)?", "read"),
    _rule(_READ, r"/api/v1/projects/[^/]+/batch(/jobs/[^/]+)?", "read"),
    # A batch job runs the project's model with a token of the project: what a developer may do.
    _rule("POST", r"/api/v1/projects/[^/]+/batch", "write"),
    # A batch job's sample of scored rows for the project's monitors (checked record by record).
    _rule("POST", r"/api/v1/projects/[^/]+/batch/monitoring", "write"),
    _rule(_READ, r"/api/v1/costs", "admin", is_global=True),
    _rule("POST", r"/api/v1/projects", "write"),
    _rule("DELETE", r"/api/v1/projects/[^/]+", "admin"),
    # --- portal (browser pages; a session cookie stands for the token) -----------------------------
    # Each page and form also checks the caller's role on its project with the rule of the API
    # route it mirrors (pave.portal.routes), so a role sees the same in both.
    _rule("GET HEAD POST", r"/signin", PUBLIC),
    # Single sign-on: the start sends the browser to the provider, the callback checks its answer.
    _rule(_READ, r"/signin/sso(/callback)?", PUBLIC),
    _rule(_READ, r"/static/portal\.(css|js)", PUBLIC),
    _rule("POST", r"/signout", "read"),
    _rule(
        _READ,
        r"/|/platform|/projects/[^/]+(/models/[^/]+|/deployment|/tuning|/costs|/compare|/notebook)?",
        "read",
    ),
    _rule(_READ, r"/incidents", "read"),  # lists only the projects the caller may read
    _rule(_READ + " POST", r"/new", "write"),
    _rule(_READ, r"/audit", "admin"),
    _rule("POST", r"/projects/[^/]+/(deploy|undeploy|weights|rollout|promote|rollback)", "deploy"),
    _rule("POST", r"/projects/[^/]+/models/[^/]+/approve", "approve"),
    # --- embedded MLflow ------------------------------------------------------------------------
    # Features Pave does not expose through MLflow: the AI gateway, jobs, the assistant.
    _rule(
        _READ + " " + _WRITE,
        r"/mlflow/((ajax-)?api/[23]\.0/)?(mlflow/)?(gateway|jobs|assistant)(/.*)?",
        "admin",
        is_global=True,
    ),
    _rule(_READ + " " + _WRITE, r"/mlflow/ajax-api/2\.0/mlflow/gateway-proxy", "admin", is_global=True),
    # Demo data and workspaces are switched off in Pave: their writes would create or delete
    # platform-wide objects that belong to no project (MLflow answers 503 for workspaces anyway).
    _rule(_WRITE, r"/mlflow/(ajax-)?api/[23]\.0/mlflow/(workspaces|demo)(/.*)?", DISABLED),
    # Webhooks make the server send requests (SSRF); workspaces are platform-wide.
    _rule(
        _READ + " " + _WRITE,
        r"/mlflow/(ajax-)?api/[23]\.0/mlflow/(webhooks|workspaces|demo|prompt-optimization)(/.*)?",
        "admin",
        is_global=True,
    ),
    # Searches are POSTs in MLflow's API but read nothing but what the caller may see.
    _rule("POST", r"/mlflow/(ajax-)?api/[23]\.0/mlflow/([a-z-]+/)*search(-[a-z]+)?", "read"),
    # Trace reads MLflow also sends as POST.
    _rule(
        "POST",
        r"/mlflow/(ajax-)?api/3\.0/mlflow/traces/(batchGetInfos|metrics|calculate-filter-correlation)",
        "read",
    ),
    # (MLflow also registers this one without the slash after "2.0".)
    _rule("POST", r"/mlflow/(ajax-)?api/2\.0/?mlflow/experiments/search-datasets", "read"),
    # MLflow's GraphQL schema only has queries and search "mutations"; the UI reads through it.
    # Its answers are filtered item by item, and the ids in its arguments are checked like any other.
    _rule("POST", r"/mlflow/graphql", "read", is_global=True),
    _rule(_READ, r"/mlflow(/.*)?", "read"),
    _rule(_WRITE, r"/mlflow/(ajax-)?api/[23]\.0/.+", "write"),
    _rule("POST", r"/mlflow/v1/traces", "write"),
)


def rule_for(method: str, path: str) -> Rule | None:
    """The rule that decides a request, or None when no rule covers it (deny)."""
    return next((rule for rule in RULES if rule.matches(method, path)), None)


def required_action(method: str, path: str) -> str | None:
    """The action a request needs, or None when no rule covers it (deny)."""
    rule = rule_for(method, path)
    return rule.action if rule is not None else None


def is_global(method: str, path: str) -> bool:
    """Whether the route is declared to concern no project."""
    rule = rule_for(method, path)
    return rule is not None and rule.is_global


_PRODUCTION_STAGE = "production"


def escalated_action(action: str, method: str, endpoint: str, values: dict[str, Any]) -> str:
    """The action a request needs once its content is known: promoting to production needs ``approve``.

    Setting, moving or deleting a production alias (``champion`` for models, ``production`` for
    the prompts a GenAI app loads: :data:`pave.governance.approvals.PRODUCTION_ALIASES`), or MLflow's
    legacy stage ``Production``, is what changes production, whatever else the route needs.
    Reading the alias is a read: a gate ``compare_to: champion`` reads it with the run's token
    (escalated, a developer's run skipped the gate for "no champion").
    """
    if method in ("GET", "HEAD"):
        return action
    if endpoint == "registered-models/alias" and str(values.get("alias", "")).lower() in PRODUCTION_ALIASES:
        return "approve"
    if (
        endpoint == "model-versions/transition-stage"
        and str(values.get("stage", "")).lower() == _PRODUCTION_STAGE
    ):
        return "approve"
    return action


def authorize(
    principal: Principal, allowed: frozenset[str], action: str, method: str, path: str, project: str | None
) -> None:
    """Raise Forbidden unless ``action`` is among the ``allowed`` actions of ``principal``."""
    if action == DISABLED:
        raise Forbidden(
            f"{principal.identity} ({principal.role} token) may not {method} {path}: "
            "this MLflow feature is switched off in Pave",
            hint="see docs/security.md (the permission table)",
        )
    if principal.is_admin or action in allowed:
        return
    where = f" on project {project!r}" if project else ""
    hint = (
        f"ask a maintainer of {project} for a role: "
        f"`pave project member add {project} {principal.identity} ROLE`"
        if project
        else "ask a platform admin for a token with a role that allows it"
    )
    raise Forbidden(
        f"{principal.identity} ({principal.role} token) may not {method} {path}{where}: it needs '{action}'",
        hint=hint,
    )
