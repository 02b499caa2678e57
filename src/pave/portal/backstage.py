"""Backstage catalog entities for what lives on Pave (``pave catalog export``).

Organisations that already run Backstage see Pave's projects there: a ``Component`` per project
(owner, template, lifecycle, links to the portal and to MLflow), an ``API`` per deployment with
the OpenAPI definition of its Open Inference Protocol endpoints (the gateway's own document, with
its bearer scheme), and a ``User`` per owner (and a
``Group`` per team, when the caller may list teams). Entity names follow Backstage's rules
(``[A-Za-z0-9][-A-Za-z0-9_.]*``, at most 63 characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

import pave
from pave.serving.openapi import openapi_document

API_VERSION = "backstage.io/v1alpha1"
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def entity_name(value: str) -> str:
    """A Backstage-safe name for ``value`` (an identity may be an e-mail address)."""
    name = _BAD.sub("-", value).strip("-_.")[:63].rstrip("-_.")
    return name or "unknown"


def owner_ref(identity: str) -> str:
    return f"user:default/{entity_name(identity)}"


def openapi_definition(deployment: str, gateway_url: str, *, token_required: bool = True) -> dict[str, Any]:
    """The OpenAPI document of one deployment's endpoints: the gateway's own document
    (``pave.serving.openapi``), narrowed to the model routes with the deployment's name filled in."""
    document = openapi_document(pave.__version__, token_required=token_required)
    paths: dict[str, Any] = {}
    for route, item in document["paths"].items():
        if not route.startswith("/v2/models/{model_name}"):
            continue
        for operation in item.values():
            operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "model_name"]
            if not operation["parameters"]:
                del operation["parameters"]
        paths[route.replace("{model_name}", deployment)] = item
    document["info"] = {
        "title": f"{deployment} inference",
        "version": document["info"]["version"],
        "description": f"Open Inference Protocol v2 endpoints of the Pave deployment {deployment}. "
        + document["info"]["description"],
    }
    document["servers"] = [{"url": gateway_url}]
    document["paths"] = paths
    return document


def entities(
    projects: Iterable[dict[str, Any]],
    deployments: Iterable[dict[str, Any]],
    *,
    url: str,
    gateway_url: str,
    teams: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Every entity for ``projects`` and ``deployments`` (as the Pave API returns them)."""
    deployed = {d["project"]: d for d in deployments}
    owners: set[str] = set()
    out: list[dict[str, Any]] = []
    for project in sorted(projects, key=lambda p: p["name"]):
        name, owner = project["name"], project["owner"]
        owners.add(owner)
        deployment = deployed.get(name)
        api = entity_name(f"{name}-inference")
        tags = ["ml", "pave"] + (
            [entity_name(project["template"]).lower()] if project.get("template") else []
        )
        annotations = {"pave.dev/project": name}
        if project.get("template"):
            annotations["pave.dev/template"] = (
                f"{project['template']}=={project.get('template_version') or ''}"
            )
        component: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "Component",
            "metadata": {
                "name": entity_name(name),
                "title": name,
                "description": project.get("description") or f"Pave project {name}",
                "tags": tags,
                "annotations": annotations,
                "links": [
                    {"url": f"{url}/projects/{name}", "title": "Pave portal"},
                    {"url": f"{url}/mlflow/", "title": "MLflow"},
                ],
            },
            "spec": {
                "type": "ml-model",
                "lifecycle": "production" if deployment else "experimental",
                "owner": owner_ref(owner),
            },
        }
        if deployment:
            component["spec"]["providesApis"] = [api]
            weights = ", ".join(
                f"v{v['version']} {v.get('weight', 0):g}%" for v in deployment["spec"].get("versions", [])
            )
            out.append(component)
            out.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "API",
                    "metadata": {
                        "name": api,
                        "title": f"{name} inference",
                        "description": f"Serves {name} ({weights})",
                        "tags": ["ml", "open-inference-protocol"],
                        "annotations": {"pave.dev/deployment": deployment["name"]},
                        "links": [
                            {"url": f"{url}/projects/{name}/deployment", "title": "Deployment in Pave"}
                        ],
                    },
                    "spec": {
                        "type": "openapi",
                        "lifecycle": "production",
                        "owner": owner_ref(owner),
                        "definition": yaml.safe_dump(
                            openapi_definition(deployment["name"], gateway_url), sort_keys=False
                        ),
                    },
                }
            )
        else:
            out.append(component)
    groups: list[dict[str, Any]] = []
    for team in teams:
        members = [entity_name(m) for m in team.get("members", []) if isinstance(m, str)]
        groups.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Group",
                "metadata": {"name": entity_name(team["name"]), "description": team.get("description") or ""},
                "spec": {"type": "team", "children": [], "members": members},
            }
        )
        owners.update(m for m in team.get("members", []) if isinstance(m, str))
    users = [
        {
            "apiVersion": API_VERSION,
            "kind": "User",
            "metadata": {"name": entity_name(owner), "annotations": {"pave.dev/identity": owner}},
            "spec": {
                "profile": {"displayName": owner},
                "memberOf": [
                    g["metadata"]["name"] for g in groups if entity_name(owner) in g["spec"]["members"]
                ],
            },
        }
        for owner in sorted(owners)
    ]
    return out + groups + users


def dump(found: list[dict[str, Any]]) -> str:
    """One YAML file of documents, as Backstage reads a ``catalog-info.yaml``."""
    return yaml.safe_dump_all(found, sort_keys=False, allow_unicode=True)
