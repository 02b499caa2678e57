"""Request and deployment builders for the serving tests (imported by name: ``serving_kit``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pave.serving.deployments import Deployment, ModelRef


def deployment(name: str = "cancer", versions: dict[str, float] | None = None, **kw: Any) -> Deployment:
    """A deployment of the registered 'cancer' model versions, with weights."""
    versions = versions or {"1": 1.0}
    refs = tuple(ModelRef(v, f"models:/cancer/{v}", w) for v, w in versions.items())
    return Deployment(name=name, versions=refs, **kw)


def columns_request(X: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """An OIP request with one input per column."""
    return {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(X)], "data": X[c].tolist()} for c in X.columns
        ],
        **extra,
    }


def table_request(X: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """An OIP request with one [n, n_columns] input, as generic OIP clients send."""
    return {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": list(X.shape),
                "data": X.to_numpy().ravel().tolist(),
            }
        ],
        **extra,
    }
