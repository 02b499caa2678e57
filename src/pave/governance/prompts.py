"""Prompts in MLflow's prompt registry belong to projects by name: ``<project>.<prompt>``.

MLflow keeps a prompt as a registered model tagged ``mlflow.prompt.is_prompt = true`` and each
prompt version as a model version with the same tag, the template in a tag and a placeholder
``source`` (``dummy-source`` from the client, ``prompt-template`` from MLflow's stores). So every
prompt route is a registry route, and scope finds a prompt's project the way it finds a model's:
from its name (:func:`pave.governance.scope.registry_project`, the part before the first dot).

The rules the request gate applies (``api/checks.py``, content check):

- a prompt is registered under an existing project: ``churn.greeting``, never ``greeting``
  (which would belong to no project) nor ``churn`` (the project's model);
- a prompt version's source is one of MLflow's placeholders and nothing else, and a version that
  is not a prompt version passes the model-source checks: a prompt cannot carry a model source
  past the artifact-store check;
- the prompt tag is written when the prompt is registered, never by ``set-tag``/``delete-tag``
  (which would turn a model into a prompt or back).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pave.errors import Forbidden, InvalidInput
from pave.governance.scope import registry_project

PROMPT_TAG = "mlflow.prompt.is_prompt"
# MLflow's own placeholders (mlflow.prompt.constants._PROMPT_SOURCE_PLACEHOLDERS).
PROMPT_SOURCES = frozenset({"dummy-source", "prompt-template"})


def is_prompt(tags: Any) -> bool:
    """Whether MLflow takes a create request with ``tags`` for a prompt (its own rule: the last
    value of the prompt tag wins, compared without case)."""
    found = "false"
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, dict) and tag.get("key") == PROMPT_TAG:
            found = str(tag.get("value", ""))
    return found.lower() == "true"


def project_of(name: str | None, projects: Iterable[str]) -> str:
    """The project of prompt ``name``; ``projects``: which projects exist (of those asked about).

    Raises:
        InvalidInput: the name has no ``<project>.`` prefix.
        Forbidden: the prefix names no project.
    """
    name = name or ""
    project, dot, rest = name.partition(".")
    if not dot or not project or not rest:
        raise InvalidInput(
            f"prompt {name!r} names no project: a prompt is named <project>.<prompt>",
            hint=f"register it as PROJECT.{name or 'PROMPT'}, e.g. mlflow.genai.register_prompt("
            f"name='churn.{rest or project or 'greeting'}', template=...)",
        )
    if registry_project(name) not in set(projects):
        raise Forbidden(
            f"prompt {name!r} names project {project!r}, which does not exist",
            hint="create it first with `pave new` (or POST /api/v1/projects), or fix the prefix",
        )
    return project


def check_belongs(prompt: str, project: str) -> str:
    """``prompt`` when it is a prompt name of ``project`` (``<project>.<name>``).

    Raises:
        InvalidInput: it names another project, or none.
    """
    owner, dot, rest = prompt.partition(".")
    if owner != project or not dot or not rest:
        raise InvalidInput(
            f"{prompt!r} is no prompt of project {project!r}",
            hint=f"prompts of {project} are named {project}.<prompt>",
        )
    return prompt


def check_source(source: str) -> None:
    """A prompt version's source is an MLflow placeholder: a prompt never points at model files."""
    if source not in PROMPT_SOURCES:
        raise InvalidInput(
            f"a prompt version's source must be MLflow's placeholder, not {source[:200]!r}",
            hint="register prompt versions with mlflow.genai.register_prompt (no source); "
            "register models as models",
        )


def check_tag_change(key: str) -> None:
    """The prompt tag is set once, when the prompt (version) is created."""
    if key == PROMPT_TAG:
        raise Forbidden(
            f"tag {PROMPT_TAG!r} is set when a prompt is registered and cannot be changed",
            hint="register a prompt with mlflow.genai.register_prompt under <project>.<prompt>",
        )
