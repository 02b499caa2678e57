"""Pave's compiled predict paths against the models' own predict, in-process.

For each model kind the gateway compiles (``pave.serving.compiled``), one fitted model is timed
two ways on the same rows, alternated: the library's own ``predict_proba`` / ``predict`` (what
``mlflow models serve`` and MLServer call), and the predict function Pave's gateway loads for it
(``pave.serving.loading.load_model`` on the model saved with MLflow, so the load-time agreement
check runs too). One row and a 32-row batch, medians of many calls; the ratio is own / Pave.

    .venv/bin/python benchmarks/predict_paths.py            # --calls N
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console()


def models() -> dict[str, Any]:
    import lightgbm
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "StandardScaler + LogisticRegression (the classification template)": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ),
        "StandardScaler + Ridge (the regression template)": make_pipeline(StandardScaler(), Ridge()),
        "RandomForestClassifier, 100 trees": RandomForestClassifier(n_estimators=100, random_state=0),
        "LGBMClassifier, 100 trees": lightgbm.LGBMClassifier(n_estimators=100, verbose=-1),
    }


def timed(predict: Callable[[Any], Any], rows: np.ndarray, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predict(rows)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="calls per measurement")
    args = parser.parse_args()
    import mlflow
    from sklearn.datasets import load_breast_cancer

    from pave.serving.loading import load_model

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    workdir = Path(tempfile.mkdtemp(prefix="pave-bench-predict-"))
    table = Table(title="Median microseconds per call, in-process (own / Pave = speed-up)")
    for column in ("model", "rows", "own predict", "Pave's path", "own / Pave"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, estimator in track(list(models().items()), description="models", console=console):
        target = y if "Ridge" not in name else X["mean radius"]
        estimator.fit(X, target)
        path = workdir / str(abs(hash(name)))
        if name.startswith("LGBM"):
            mlflow.lightgbm.save_model(estimator, str(path), input_example=X.head(3))
        else:
            # trees are stored by skops, which asks to name their node storage as trusted (we made it)
            trusted = ["sklearn.tree._tree.Tree"] if "Forest" in name else None
            mlflow.sklearn.save_model(
                estimator, str(path), input_example=X.head(3), skops_trusted_types=trusted
            )
        loaded = load_model(str(path), tracking_uri=None, cache_dir=workdir / "cache")
        compiled = "_compiled_outputs" in loaded.predict.__qualname__
        own = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
        for n in (1, 32):
            rows = X.to_numpy(dtype=np.float64)[:n]
            own(rows), loaded.predict(rows)  # warm-up
            theirs, ours = [], []
            for _ in range(3):  # alternated rounds
                theirs.append(timed(own, rows, args.calls))
                ours.append(timed(loaded.predict, rows, args.calls))
            a, b = statistics.median(theirs), statistics.median(ours)
            label = name if compiled else f"{name} (not compiled)"
            table.add_row(label if n == 1 else "", str(n), f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.1f}x")
    console.print(table)


if __name__ == "__main__":
    main()
