"""Logging a model with the MLflow flavor named in pave.yaml.

Requirements are passed explicitly (the installed versions of the flavor's packages) so MLflow
skips its slow requirement inference, which imports the model in a subprocess.
"""

from __future__ import annotations

import logging
from typing import Any

from pave.errors import InvalidInput
from pave.tracking.lineage import installed_version

# flavor -> (MLflow module, distributions the model needs at load time)
FLAVORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sklearn": ("mlflow.sklearn", ("mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas", "scipy")),
    "lightgbm": ("mlflow.lightgbm", ("mlflow", "lightgbm", "scikit-learn", "cloudpickle", "numpy", "pandas")),
    "pyfunc": ("mlflow.pyfunc", ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn")),
}
EXAMPLE_KEYS = ("X_test", "X_valid", "X_val", "X_train", "X")
EXAMPLE_ROWS = 5


def pip_requirements(flavor: str) -> list[str]:
    """``name==version`` for the flavor's packages that are installed."""
    out = []
    for dist in FLAVORS[flavor][1]:
        version = installed_version(dist)
        if version is not None:
            out.append(f"{dist}=={version}")
    return out


def input_example(output: Any, rows: int = EXAMPLE_ROWS) -> Any:
    """The first ``rows`` rows of example model inputs found in a step's output (see docs/spec.md),
    or None."""
    import pandas as pd

    candidate = output
    if not isinstance(output, (pd.DataFrame,)):
        candidate = None
        for key in EXAMPLE_KEYS:
            if isinstance(output, dict) and key in output:
                candidate = output[key]
                break
            if hasattr(output, key):
                candidate = getattr(output, key)
                break
    if candidate is None:
        return None
    if isinstance(candidate, (pd.DataFrame, pd.Series)):
        return candidate.head(rows)
    if hasattr(candidate, "__getitem__") and hasattr(candidate, "shape"):
        return candidate[:rows]
    return None


def log_model(flavor: str, model: Any, *, example: Any = None, name: str = "model") -> Any:
    """Log ``model`` to the active MLflow run; returns MLflow's ``ModelInfo``.

    Raises:
        InvalidInput: the model step's output does not fit the flavor.
    """
    import importlib

    from mlflow.models import infer_signature

    module = importlib.import_module(FLAVORS[flavor][0])
    signature = None
    if example is not None and flavor != "pyfunc":
        try:
            signature = infer_signature(example, model.predict(example))
        except Exception as exc:
            raise InvalidInput(
                f"the model cannot predict on the input example: {type(exc).__name__}: {exc}",
                hint="check model.input_example_from in pave.yaml names the step with the model's inputs",
            ) from exc
    kwargs: dict[str, Any] = {
        "name": name,
        "signature": signature,
        "input_example": example,
        "pip_requirements": pip_requirements(flavor),
    }
    if flavor == "sklearn":
        kwargs["serialization_format"] = "cloudpickle"
        # MLflow warns on every cloudpickle save; the choice is deliberate (skops cannot load
        # arbitrary pipelines) and documented, so keep the user's terminal quiet.
        quiet = logging.getLogger("mlflow.sklearn")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return module.log_model(model, **kwargs)
        finally:
            quiet.setLevel(level)
    if flavor == "lightgbm":
        return module.log_model(model, **kwargs)
    import mlflow.pyfunc

    if not isinstance(model, mlflow.pyfunc.PythonModel):
        raise InvalidInput(
            "model flavor pyfunc needs a mlflow.pyfunc.PythonModel, "
            f"the model step returned a {type(model).__name__}",
            hint="return a PythonModel subclass instance, or set model.flavor to sklearn or lightgbm",
        )
    return module.log_model(python_model=model, **kwargs)
