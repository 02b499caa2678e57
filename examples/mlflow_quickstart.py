"""Plain MLflow code, unmodified, against Pave.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:8000/mlflow
    export MLFLOW_TRACKING_TOKEN=<a Pave token, e.g. the one `pave up` printed on first start>
    python examples/mlflow_quickstart.py

Nothing here knows about Pave: experiments, params, metrics, a logged and registered model, an
alias, and loading the model back by alias to predict.
"""

from __future__ import annotations

import sys

import mlflow
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL_NAME = sys.argv[1] if len(sys.argv) > 1 else "quickstart-iris"


def main() -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment("quickstart")
    with mlflow.start_run() as run:
        model = LogisticRegression(max_iter=300, random_state=0).fit(x, y)
        mlflow.log_params({"max_iter": 300, "C": 1.0})
        mlflow.log_metric("accuracy", model.score(x, y))
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL_NAME, input_example=x.head(2)
        )
    client = MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, "champion", info.registered_model_version)
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    predictions = loaded.predict(x.head(5))
    assert list(predictions) == list(model.predict(x.head(5)))
    print(f"run={run.info.run_id} version={info.registered_model_version} predictions={list(predictions)}")


if __name__ == "__main__":
    main()
