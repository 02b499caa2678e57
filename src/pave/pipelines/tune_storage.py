"""A tuning's study storage, and a trial's reporter: what reaches the study outside the driver.

Kept apart from :mod:`pave.pipelines.tune_trials` (which imports MLflow and the pipeline runner):
a trial's :class:`Reporter` travels with its steps' contexts to the processes that run them (a
child process, a Ray worker), and unpickling it there imports this module, which imports nothing
heavy until a step reports (then Optuna and SQLAlchemy, to reach the study).
"""

from __future__ import annotations

import os
from typing import Any

from pave.errors import MissingExtra
from pave.pipelines import context as step_context


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingExtra("pave tune", "tune") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at ``url`` (the PostgreSQL schema it names is created first).

    On SQLite every transaction takes the write lock when it begins (``BEGIN IMMEDIATE``) and waits
    for it (busy timeout): trial workers in other processes read and then write the same rows (two
    claiming one queued trial), and a read that turns into a write after another process committed
    would otherwise fail at once instead of waiting its turn.
    """
    from pave.store.db import check_connection, make_engine

    optuna = optuna_module()
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(
        url.replace("postgresql://", "postgresql+psycopg://"), engine_kwargs=kwargs
    )
    if url.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def _begin_immediate(engine: Any) -> None:
    from sqlalchemy import event

    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own deferred BEGIN off: ours below

    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)
    engine.dispose()  # connections opened before the listeners: closed, opened again with them


def pruner(kind: str) -> Any:
    optuna = optuna_module()
    return optuna.pruners.MedianPruner() if kind == "median" else optuna.pruners.NopPruner()


class Reporter:
    """``ctx.report`` during a trial: report to Optuna, raise StepPruned when the pruner says so.

    It travels with the step's context: in the process that runs the trial it uses the trial;
    elsewhere (a step's child process, a Ray worker: it pickles without the trial) it opens the
    study's storage once and reports through it.
    """

    def __init__(self, trial: Any, storage_url: str, pruner_kind: str) -> None:
        self.trial: Any = trial
        self.pid = os.getpid()
        self.storage_url, self.pruner_kind = storage_url, pruner_kind
        self.study_name, self.trial_id = trial.study.study_name, trial._trial_id

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"trial": None}

    def __call__(self, step: str, value: float, position: int) -> None:
        if self.trial is None or os.getpid() != self.pid:  # its own connection to the study
            optuna = optuna_module()
            study = optuna.load_study(
                study_name=self.study_name,
                storage=open_storage(self.storage_url),
                pruner=pruner(self.pruner_kind),
            )
            self.trial, self.pid = optuna.trial.Trial(study, self.trial_id), os.getpid()
        self.trial.report(value, position)
        if self.trial.should_prune():
            raise step_context.StepPruned(f"trial {self.trial.number} pruned at {step} position {position}")
