# The seed's Example 2 (train_model.py), kept verbatim in behaviour: an unmodified
# MLflow client script that a data scientist would run against the platform.
import argparse
import os

import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import train_test_split


def train_and_register_model(experiment_name, run_name, model_name):
    if "MLFLOW_TRACKING_URI" not in os.environ:
        print("MLFLOW_TRACKING_URI not set. Using default local tracking.")
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(run_name=run_name) as run:
        iris = load_iris()
        X, y = iris.data, iris.target
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
        solver = "liblinear"
        max_iter = 1000
        C = 0.1
        mlflow.log_param("solver", solver)
        mlflow.log_param("max_iter", max_iter)
        mlflow.log_param("C", C)
        model = LogisticRegression(solver=solver, max_iter=max_iter, C=C, random_state=42)
        model.fit(X_train, y_train)
        y_pred = model.predict(X_test)
        accuracy = accuracy_score(y_test, y_pred)
        precision = precision_score(y_test, y_pred, average="weighted")
        recall = recall_score(y_test, y_pred, average="weighted")
        f1 = f1_score(y_test, y_pred, average="weighted")
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_metric("precision", precision)
        mlflow.log_metric("recall", recall)
        mlflow.log_metric("f1_score", f1)
        print(f"Logged metrics: Accuracy={accuracy:.4f}, Precision={precision:.4f}")
        mlflow.sklearn.log_model(
            sk_model=model,
            artifact_path="iris_model",
            registered_model_name=model_name,
            tags={"data_version": "v1.0", "dataset_size": len(X), "model_type": "LogisticRegression"},
        )
        print(f"Model '{model_name}' registered with MLflow.")
        print(f"MLflow Run ID: {run.info.run_id}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train and register an ML model.")
    parser.add_argument("--experiment_name", type=str, default="Iris_Classification_Experiment")
    parser.add_argument("--run_name", type=str, default="Logistic_Regression_Run")
    parser.add_argument("--model_name", type=str, default="IrisClassifier")
    args = parser.parse_args()
    train_and_register_model(args.experiment_name, args.run_name, args.model_name)
