"""The golden-path templates Pave ships: one declarative table.

Each template lives in this package as ``<name>/<version>/``, a copier template (``copier.yml`` and,
under ``project/``, the files it renders). The first version folder holds the whole template; each
later one holds the files that changed since the previous version (whole files; an unchanged copy
is harmless, e.g. a `ruff.toml` that lints the folder), plus an
optional ``REMOVED.txt`` naming files the new version deletes, one path a line, relative to the
version folder. :mod:`pave.templates.repo` replays the versions as git commits with one tag each,
which is what lets ``copier update`` merge a new version into a project its owner has edited.

No file or folder in a template may start with a dot (package-data globs would drop it from the
wheel): a project's ``.github`` or ``.gitignore`` is shipped as ``{{'.github'}}``, which copier renders.

To release a new version of a template: add the folder, put the changed files in it, bump the
``template.version`` in its ``pave.yaml.jinja``, and append the version to the table below.
Never change a released version's folder: projects generated from it name its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pave.errors import NotFound

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TemplateInfo:
    """One golden-path template.

    Attributes:
        name: what ``pave new --template`` takes.
        description: one line for listings.
        generates: what a generated project holds, for listings and docs.
        versions: released versions, oldest first; the last one is what ``pave new`` uses.
    """

    name: str
    description: str
    generates: str
    versions: tuple[str, ...]

    @property
    def version(self) -> str:
        """The latest version."""
        return self.versions[-1]

    @property
    def source(self) -> Path:
        """The folder holding this template's version folders."""
        return PACKAGE_DIR / self.name


_COMMON = (
    "pave.yaml, steps.py, schema.py (pandera), tests/test_steps.py, README.md, pyproject.toml, "
    ".github/workflows/pave.yml (pave ci), notebooks/explore.ipynb (pave notebook), "
    "catalog-info.yaml (Backstage)"
)

TEMPLATES: tuple[TemplateInfo, ...] = (
    TemplateInfo(
        name="tabular-classification",
        description="Binary classification on a table: scikit-learn logistic regression",
        generates=(
            f"{_COMMON}; data/train.csv (breast-cancer data), request.json (an example prediction "
            "request); metrics accuracy, f1, roc_auc"
        ),
        versions=("0.1.0", "0.2.0", "0.3.0"),
    ),
    TemplateInfo(
        name="tabular-regression",
        description="Regression on a table: scikit-learn ridge regression",
        generates=f"{_COMMON}; data/train.csv (diabetes data); metrics rmse, mae, r2",
        versions=("0.1.0", "0.2.0"),
    ),
    TemplateInfo(
        name="recommendation",
        description="Top-k recommendations from implicit feedback: item factors from a truncated SVD",
        generates=(
            f"{_COMMON}; make_data.py and data/interactions.csv (synthetic, seeded); "
            "an MLflow pyfunc model; metrics precision_at_k, recall_at_k"
        ),
        versions=("0.1.0", "0.2.0"),
    ),
)


def list_templates() -> list[TemplateInfo]:
    """Every template Pave ships, in the order of the table."""
    return list(TEMPLATES)


def get_template(name: str) -> TemplateInfo:
    """The template called ``name``.

    Raises:
        NotFound: no template has that name.
    """
    for info in TEMPLATES:
        if info.name == name:
            return info
    raise NotFound(
        f"template {name!r} does not exist",
        hint="choose one of: " + ", ".join(t.name for t in TEMPLATES),
    )
