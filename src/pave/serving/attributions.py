"""Global importances: the mean absolute SHAP attribution of each feature over many rows.

The same explainers as ``/explain`` (:mod:`pave.serving.explain`: exact for linear and tree
models, Kernel SHAP otherwise), averaged over the rows and the model's outputs:
``importance_j = mean_i mean_k |attributions[i][k][j]|``, in the explainer's output space.

- ``pave run`` computes them on the reference sample (the first :data:`REFERENCE_ROWS` rows of the
  evaluation split that gave the input example) from the model it just logged, and logs them as
  ``explain/importances.json``: the model card shows them, and they are the reference of an
  ``attribution_drift`` monitor;
- that monitor computes them on the live inputs of its window. Computing an attribution runs the
  model, and the control plane never loads a model: :func:`importances_in_subprocess` loads it in
  a process of its own (``python -m pave.serving.attributions``: JSON in, JSON out, nothing
  pickled), as a gateway would, its own environment included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pave.errors import Unavailable
from pave.serving.explain import _feature_names, as_matrix, explainer_for
from pave.serving.loading import LoadedModel, load_model

IMPORTANCES_ARTIFACT = "explain/importances.json"
REFERENCE_ROWS = 200
KERNEL_ROWS = 50  # Kernel SHAP costs a model call per coalition: fewer rows
TIMEOUT = 600.0


def importances(model: LoadedModel, rows: Any) -> dict[str, Any]:
    """Mean |SHAP| per feature of ``model`` over ``rows`` (a DataFrame, or a matrix in feature order).

    Raises:
        InvalidInput: rows without the model's features, or non-numeric ones.
    """
    if model.explainer is None:
        model.explainer = explainer_for(model)
    names = _feature_names(model)
    matrix = _matrix(model, rows, names)
    explanation = model.explainer(matrix[:KERNEL_ROWS] if _is_kernel(model) else matrix)
    values = np.abs(explanation.attributions).mean(axis=(0, 1))
    return {
        "method": explanation.method,
        "output_space": explanation.output_space,
        "rows": int(explanation.attributions.shape[0]),
        "features": {name: float(v) for name, v in zip(names, values, strict=True)},
    }


def _is_kernel(model: LoadedModel) -> bool:
    return getattr(model.explainer, "__qualname__", "").startswith("_kernel")


def _matrix(model: LoadedModel, rows: Any, names: list[str]) -> np.ndarray:
    if isinstance(rows, pd.DataFrame) and not set(names) <= set(rows.columns):
        # one tensor input, logged as a list per row: stack them
        tensors = [c for c in rows.columns if rows[c].map(lambda v: isinstance(v, list)).all()]
        if len(tensors) == 1:
            rows = np.vstack(rows[tensors[0]].to_list())
    return as_matrix(model, rows, names)


def importances_of_uri(
    uri: str, rows: Any, *, tracking_uri: str | None, home: Path, envs_dir: Path | None = None
) -> dict[str, Any]:
    """Load the model at ``uri`` here (a process that may run the model's code) and compute them."""
    envs = envs_dir or home / "envs"
    model = load_model(uri, tracking_uri=tracking_uri, cache_dir=home / "cache" / "models", envs_dir=envs)
    return importances(model, rows)


def importances_in_subprocess(
    uri: str, rows: pd.DataFrame, *, tracking_uri: str | None, home: Path, envs_dir: Path | None = None
) -> dict[str, Any]:
    """:func:`importances_of_uri` in a process of its own (the control plane never loads a model).

    Raises:
        Unavailable: the process failed (its last lines are in the message).
    """
    payload = {
        "uri": uri,
        "tracking_uri": tracking_uri,
        "home": str(home),
        "envs_dir": str(envs_dir or home / "envs"),
        "rows": rows.to_dict(orient="split", index=False),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pave.serving.attributions"],
            input=json.dumps(payload, default=_plain),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"computing attributions of {uri} took over {TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-3:])
        raise Unavailable(f"computing attributions of {uri} failed: {tail}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def main() -> None:
    payload = json.loads(sys.stdin.read())
    split = payload["rows"]
    rows = pd.DataFrame(split["data"], columns=split["columns"])
    answer = importances_of_uri(
        payload["uri"],
        rows,
        tracking_uri=payload["tracking_uri"],
        home=Path(payload["home"]),
        envs_dir=Path(payload["envs_dir"]),
    )
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
