"""Pipeline steps on a real Ray cluster, started by this module: the same results as a local run.

Every Ray test of the suite lives in this module, so that one xdist worker owns the one cluster.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.integrations.ray import RayExecutor, RayUnavailable
from pave.pipelines import execute_project
from pave.pipelines.engine import PipelineResult, run_pipeline
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.spec_file import load_spec
from pave_testing import RAY_START_ENV, free_port, need_service, run_pave, stop_ray_cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FLAKY = """
import os


def flaky(ctx, fail_times: int) -> dict:
    counter = ctx.project_dir / "attempts.txt"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    print("attempt", n, "in", os.getpid())
    if n < fail_times:
        raise RuntimeError(f"boom {n}")
    return {"pid": os.getpid()}


def after(x: dict) -> dict:
    return {**x, "after": True}
"""


def _flaky_yaml(retries: int, fail_times: int) -> str:
    return (
        "name: flaky\n"
        "steps:\n"
        "  - {name: first, function: steps:flaky, "
        f"params: {{fail_times: {fail_times}}}, retries: {retries}}}\n"
        "  - {name: second, function: steps:after, inputs: {x: first}}\n"
    )


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A two-node Ray cluster (a head and a worker node, two CPUs each) started with `ray start`, as a
    platform team would; both nodes run on this machine, each with its own temporary folder."""

    def check() -> None:
        if importlib.util.find_spec("ray") is None:
            raise ModuleNotFoundError("No module named 'ray'")

    need_service("Ray", "install the extra: pip install 'pave[ray]' (scripts/install dev does)", check)
    # Token authentication, as a cluster should run (Ray's own state of it reset: whatever ran before
    # on this worker may have imported Ray, which reads the mode and the token into its config).
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {name: os.environ.get(name) for name in token}
    _ray_auth(token)
    temp = Path(tempfile.mkdtemp(prefix="pray-", dir="/tmp"))  # Ray's socket paths must stay short
    port, client_port = free_port(), free_port()
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus=2", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    # Ray Client's server on a free port too: its default (10001) is taken by any other cluster here.
    head = [ray, "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}"]
    head += ["--include-dashboard=false", f"--temp-dir={temp}/h"]
    # A second node joins the head, as a worker host would (its own temp dir: its own processes).
    worker = [ray, "start", f"--address=127.0.0.1:{port}", f"--temp-dir={temp}/w"]
    env = os.environ | RAY_START_ENV
    started = subprocess.run(head + common, env=env, capture_output=True, text=True, timeout=180)
    if started.returncode == 0:
        started = subprocess.run(worker + common, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        stop_ray_cluster(temp, client_port)
        shutil.rmtree(temp, ignore_errors=True)
        _ray_auth(saved)


def _ray_auth(values: dict[str, str | None]) -> None:
    """Set (or, with None, unset) Ray's authentication variables in this process, and make a Ray
    imported before read them again: Ray loads them into process-global state (its config and a
    cached token) when it is imported, so setting the variables alone is not enough then."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "ray" in sys.modules:
        from ray._private.authentication_test_utils import reset_auth_token_state

        reset_auth_token_state()


def test_a_project_runs_on_the_cluster_as_it_runs_locally(
    churn_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    root = churn_project()
    local = execute_project(
        root,
        tracking_uri=tracking_uri,
        settings=Settings(home=tmp_path / "local", artifact_root=str(tmp_path / "artifacts")),
        progress=False,
    )
    on_ray = execute_project(
        root,
        tracking_uri=tracking_uri,
        settings=Settings(
            home=tmp_path / "ray",
            artifact_root=str(tmp_path / "artifacts"),
            executor="ray",
            executor_address=ray_cluster,
        ),
        progress=False,
    )
    assert on_ray.status == "FINISHED"
    assert on_ray.ran_steps == local.ran_steps == ["prepare", "train", "evaluate"]
    assert on_ray.metrics == local.metrics  # same code, data and seed: the same model
    assert on_ray.model_version == str(int(local.model_version or 0) + 1)
    tags = MlflowClient(tracking_uri=tracking_uri).get_run(on_ray.run_id).data.tags
    assert tags["pave.executor"] == f"ray {ray_cluster}"
    log = mlflow.artifacts.load_text(f"{on_ray.artifact_uri}/logs/train.log")
    assert "ran on Ray node" in log
    assert f"pid {os.getpid()} " not in log
    assert "training with C = 1.0" in log  # the step's own output came back


def _run(root: Path, executor: RayExecutor, logs: Path) -> PipelineResult:
    spec = load_spec(root)
    return run_pipeline(
        spec, root, sources={}, source_hashes={}, cache_dir=None, log_dir=logs, executor=executor
    )


def test_retries_failures_and_logs_on_the_cluster(make_project, tmp_path: Path, ray_cluster: str) -> None:
    root = make_project({"pave.yaml": _flaky_yaml(retries=2, fail_times=2), "steps.py": FLAKY})
    with RayExecutor(root, ray_cluster) as executor:
        result = _run(root, executor, tmp_path / "logs")
        assert result.record("first").attempts == 3
        assert result.output("second")["after"] is True
        assert result.output("first")["pid"] != os.getpid()
        log = (tmp_path / "logs" / "first.log").read_text()
        assert "boom 1" in log
        assert "ran on Ray node" in log

    # an executor ships one project to the cluster: another project gets its own
    failing = make_project({"pave.yaml": _flaky_yaml(retries=1, fail_times=5), "steps.py": FLAKY}, "failing")
    with RayExecutor(failing, ray_cluster) as executor, pytest.raises(PipelineStepFailed) as info:
        _run(failing, executor, tmp_path / "failing-logs")
    assert info.value.step == "first"
    assert "RuntimeError: boom 1" in info.value.message
    assert not (root / "attempts.txt").exists(), "the steps ran on the cluster's copy of the project"


def test_a_cluster_nobody_runs_is_refused_before_ray_waits_for_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with pytest.raises(RayUnavailable) as info, RayExecutor(tmp_path, f"127.0.0.1:{free_port()}"):
        pass
    assert "no Ray cluster answers" in info.value.message
    assert "ray start --head" in (info.value.hint or "")
    with pytest.raises(RayUnavailable, match="not a Ray cluster address"), RayExecutor(tmp_path, "nowhere"):
        pass


def test_independent_steps_run_at_once_on_both_nodes_with_their_resources(
    make_project, tmp_path: Path, ray_cluster: str
) -> None:
    from test_parallel import STEPS, branches

    # Two CPUs each on nodes of two CPUs: they cannot share a node, and each step passes only when
    # the other one runs at the same time.
    text = branches(tmp_path / "marks", resources="{cpus: 2}")
    (tmp_path / "marks").mkdir()
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    with RayExecutor(root, ray_cluster) as executor:
        result = _run(root, executor, tmp_path / "logs")
    left, right = result.record("left"), result.record("right")
    assert left.started < right.ended
    assert right.started < left.ended
    assert left.node != right.node
    assert {left.node, right.node} == _node_ids(ray_cluster)
    assert left.assigned["CPU"] == right.assigned["CPU"] == 2.0
    assert left.cpu_seconds > 0
    assert left.peak_memory > 0
    assert result.output("both")[0] != os.getpid()


def _node_ids(address: str) -> set[str]:
    import ray

    ray.init(address=address, namespace="pave-test", log_to_driver=False, configure_logging=False)
    try:
        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()


def test_foreach_timeouts_and_impossible_resources_on_the_cluster(
    make_project, tmp_path: Path, ray_cluster: str
) -> None:
    from test_parallel import STEPS

    text = """
name: fan
steps:
  - {name: square, function: steps:square, params: {x: [1, 2, 3, 4]}, foreach: x}
  - {name: total, function: steps:total, inputs: {values: square}}
"""
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    with RayExecutor(root, ray_cluster) as executor:
        result = _run(root, executor, tmp_path / "fan")
    assert result.output("square") == [1, 4, 9, 16]
    assert result.output("total") == 30

    slow = "name: slow\nsteps:\n  - {name: nap, function: steps:slow, params: {seconds: 120}, timeout: 3}\n"
    root = make_project({"pave.yaml": slow, "steps.py": STEPS}, "slow")
    with RayExecutor(root, ray_cluster) as executor, pytest.raises(PipelineStepFailed) as info:
        _run(root, executor, tmp_path / "slow")
    assert "ran longer than its timeout of 3 s" in info.value.message

    huge = (
        "name: huge\nsteps:\n  - "
        "{name: big, function: steps:slow, params: {seconds: 0}, resources: {cpus: 3}}"
    )
    root = make_project({"pave.yaml": huge, "steps.py": STEPS}, "huge")
    with RayExecutor(root, ray_cluster) as executor, pytest.raises(PipelineStepFailed) as info:
        _run(root, executor, tmp_path / "huge")
    assert "asks for 3 CPU, and the largest node of the cluster has 2" in info.value.message


def test_tuning_trials_run_at_once_on_both_nodes(
    make_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    from test_tune import STEPS, tuning_yaml

    from pave.pipelines.tune import tune_project

    marks = tmp_path / "marks"
    marks.mkdir()
    # Trials take the CPUs of their largest step: two CPUs, so two trials at once need both nodes.
    text = tuning_yaml("tune-ray", marks, trials=3, parallel=2, nap=4.0).replace(
        "nap: 4.0}}", "nap: 4.0}, resources: {cpus: 2}}"
    )
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    settings = Settings(home=tmp_path / "home", executor="ray", executor_address=ray_cluster)
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert [t.state for t in result.trials] == ["COMPLETE"] * 3
    first, *later = sorted(result.trials, key=lambda t: t.number)
    # The first runs alone until the shared step is cached (it ran once, below), not to its end.
    assert first.started <= min(t.started for t in later)  # type: ignore[operator,type-var]
    phases = result.phases
    assert phases["shared steps cached"] <= phases["parallel trials started"] <= phases["second trial asked"]
    # Two trials at a time: the first's own steps and the second's, or the second's and the third's
    # (which pair depends on which ends first); at least one pair ran at once.
    at_once = [
        (x, y)
        for x, y in itertools.combinations(result.trials, 2)
        if x.started < y.ended and y.started < x.ended  # type: ignore[operator]
    ]
    assert at_once, [(t.number, t.started, t.ended) for t in result.trials]
    nodes = {n for t in result.trials for n in t.node.removeprefix("ray:").split(",")}  # type: ignore[union-attr]
    assert nodes == _node_ids(ray_cluster)  # 2-CPU trains at once: one on each node
    assert len(list(marks.iterdir())) == 1  # the shared step ran once


def test_tuning_on_ray_prunes_trials_reported_from_the_workers(
    make_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    from test_tune import STEPS, tuning_yaml

    from pave.pipelines.tune import TAG_STATE, tune_project

    marks = tmp_path / "marks"
    marks.mkdir()
    text = tuning_yaml("tune-ray-prune", marks, trials=14, parallel=2, pruner="median")
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    settings = Settings(home=tmp_path / "home", executor="ray", executor_address=ray_cluster)
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    states = [t.state for t in result.trials]
    assert len(states) == 14
    assert "PRUNED" in states
    assert all(t.node and t.node.startswith("ray:") for t in result.trials if t.state == "COMPLETE")
    client = MlflowClient(tracking_uri=tracking_uri)
    for trial in result.trials:
        assert trial.run_id is not None
        expected = "pruned" if trial.state == "PRUNED" else "complete"
        assert client.get_run(trial.run_id).data.tags[TAG_STATE] == expected


def _pool_workers(address: str) -> set[str]:
    import ray

    from pave.integrations.ray_pool import NAMESPACE, PREFIX

    ray.init(address=address, namespace="pave-test", log_to_driver=False, configure_logging=False)
    try:
        return {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIX)
        }
    finally:
        ray.shutdown()


def test_a_tuning_reuses_the_pool_workers_of_the_last_and_pave_down_stops_them(
    make_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    from test_tune import STEPS, tuning_yaml

    from pave.pipelines.tune import tune_project

    settings = Settings(home=tmp_path / "home", executor="ray", executor_address=ray_cluster)
    before = _pool_workers(ray_cluster)  # other tests' tunings on this cluster left theirs
    pools = []
    # A project tuned twice, its code edited in between (the second tuning's steps are not cached):
    # a warm worker must import the edited module `steps`, not run the first one again. Then another
    # project, whose steps must not share a process with the first's.
    edited = STEPS.replace('return {"score": score}', 'return {"score": score + 1000.0}')
    runs = (("tune-pool-a", STEPS), ("tune-pool-a", edited), ("tune-pool-b", STEPS))
    for index, (name, steps) in enumerate(runs):
        marks = tmp_path / f"marks-{index}"
        marks.mkdir()
        root = make_project(
            {"pave.yaml": tuning_yaml(name, marks, trials=3, parallel=2), "steps.py": steps}, folder=name
        )
        result = tune_project(
            root, tracking_uri=tracking_uri, settings=settings, study=f"{name}-{index}", progress=False
        )
        assert [t.state for t in result.trials] == ["COMPLETE"] * 3
        assert all(t.node and t.node.startswith("ray:") for t in result.trials)
        assert all((t.value or 0) > 500 for t in result.trials) == (steps is edited)
        pools.append(_pool_workers(ray_cluster))
    assert pools[0]  # the tuning's workers outlive it
    assert len(pools[0] - before) <= 2  # no more than the tuning's parallel trials
    assert pools[1] == pools[0]  # the project's next tuning ran its steps on them, starting none
    assert 1 <= len(pools[2] - pools[1]) <= 2  # another project's tuning started workers of its own

    env = {**os.environ, "PAVE_HOME": str(tmp_path / "down"), "PAVE_EXECUTOR": "ray"}
    env["PAVE_EXECUTOR_ADDRESS"] = ray_cluster
    down = run_pave("down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "pooled Ray worker(s) stopped" in down.stdout
    assert _pool_workers(ray_cluster) == set()  # nothing Pave started is left on the cluster


def test_a_cold_pool_lends_a_worker_only_once_its_process_is_up(ray_cluster: str) -> None:
    import threading

    import ray
    from ray._private import state

    from pave.integrations.ray_pool import NAMESPACE, WorkerPool

    ray.init(address=ray_cluster, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    try:
        # A project no tuning ran: every worker is started now (a new process each, on either node).
        pool = WorkerPool(ray, 2, f"pool-up-{secrets.token_hex(4)}", idle_seconds=60.0)
        assert pool.reused == 0
        lent = [pool.take(threading.Event()) for _ in range(2)]
        # Lent at once, a worker would still be starting its process (PENDING_CREATION): a step
        # would wait for it while another worker may be up already.
        assert [state.actors(w._actor_id.hex())["State"] for w in lent] == ["ALIVE", "ALIVE"]
        for worker in lent:
            ray.kill(worker, no_restart=True)
    finally:
        ray.shutdown()


def test_batch_scores_row_groups_on_both_nodes_as_it_does_locally(
    tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression

    from pave.serving.batch import score_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(16_000, 4)), columns=["a", "b", "c", "d"])
    model = LogisticRegression().fit(frame, (frame["a"] + frame["b"] > 0).astype(int))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # An explicit artifact location: an in-process control plane of an earlier module on this worker
    # may have left MLflow's server settings (a proxied mlflow-artifacts: default) in the env.
    experiment = mlflow.create_experiment("ray-batch", artifact_location=(tmp_path / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.sklearn.log_model(
            model, name="model", input_example=frame.head(3), registered_model_name="raybatch"
        )
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, row_group_size=1_000)

    def score(target: str, **kwargs: object) -> object:
        return score_table(
            "raybatch",
            input_uri=str(source),
            output_uri=f"{tmp_path}/{target}",
            tracking_uri=tracking_uri,
            cache_dir=tmp_path / "models",
            version="1",
            **kwargs,  # type: ignore[arg-type]
        )

    seen: list[tuple[int, int]] = []
    on_ray = score(
        "ray.parquet",
        ray=True,
        ray_address=ray_cluster,
        progress=lambda rows, parts: seen.append((rows, parts)),
    )
    score("local.parquet", workers=1)
    assert set(on_ray.nodes) == _node_ids(ray_cluster)  # type: ignore[attr-defined]
    assert on_ray.rows == len(frame)  # type: ignore[attr-defined]
    assert seen == [
        (1_000 * part, part) for part in range(1, 17)
    ]  # progress after every row group, on Ray too
    scored, local = pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(scored, local)
    assert (scored["predict"].to_numpy() == model.predict(frame)).all()
    # A folder of part files from Ray's parts too: the same rows, in the input's order.
    score("ray-folder/", ray=True, ray_address=ray_cluster)
    assert len(list((tmp_path / "ray-folder").glob("part-*.parquet"))) == 16
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray-folder"), local)


STOPPABLE = """
import os
import time
from pathlib import Path


def prepare() -> list:
    return [1.0, 2.0, 3.0]


def train(data: list, x: float, marks: str) -> float:
    first = not list(Path(marks).glob("train.*"))
    Path(marks, f"train.{os.getpid()}.{time.time_ns()}").write_text(str(os.getpid()))
    if not first and Path(marks, "slow").exists():  # every trial after the first: until stopped
        time.sleep(900)
        Path(marks, f"slept.{time.time_ns()}").write_text("")
    return -((x - 2.0) ** 2) + sum(data)


def evaluate(score: float) -> dict:
    return {"score": score}
"""

DRIVER = """
import sys

from pave.config import Settings
from pave.pipelines.tune import TuningInterrupted, tune_project

project, home, address, tracking_uri = sys.argv[1:]
settings = Settings(home=home, executor="ray", executor_address=address)
try:
    tune_project(project, tracking_uri=tracking_uri, settings=settings, progress=False)
except TuningInterrupted as stopped:
    print(stopped.message)
    print(stopped.hint)
    sys.exit(130)
"""


def test_ctrl_c_stops_a_tuning_on_ray_at_once_and_it_resumes(
    make_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    from pave.pipelines.tune import TAG_STATE, TAG_TRIAL, open_storage, tune_project

    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "slow").write_text("")
    text = (
        "name: tune-stopped\nseed: 5\nsteps:\n"
        "  - {name: prepare, function: steps:prepare}\n"
        f"  - {{name: train, function: steps:train, inputs: {{data: prepare}}, "
        f"params: {{x: 0.0, marks: '{marks}'}}}}\n"
        "  - {name: evaluate, function: steps:evaluate, inputs: {score: train}}\n"
        "metrics: {step: evaluate, primary: score}\n"
        "tune: {metric: score, trials: 4, parallel: 2, pruner: none, "
        "params: {train.x: {type: float, low: -5.0, high: 5.0}}}\n"
    )
    root = make_project({"pave.yaml": text, "steps.py": STOPPABLE})
    settings = Settings(home=tmp_path / "home", executor="ray", executor_address=ray_cluster)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root), str(settings.home), ray_cluster, tracking_uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len(list(marks.glob("train.*"))) < 3:  # the first trial, then two at once on the cluster
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the trials never started"
            time.sleep(0.2)
        driver.send_signal(signal.SIGINT)
        # The running trials sleep for 900 s: waiting for them would end this wait first.
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, out + err[-3000:]
    assert "1 of 4 trials finished; 2 stopped" in out, out
    assert f"run `pave tune {root}` to resume" in out
    assert not list(marks.glob("slept.*")), "a trial's step ran to its end"
    workers = {int(p.read_text()) for p in marks.glob("train.*")}
    deadline = time.monotonic() + 120
    while alive := [pid for pid in workers if Path(f"/proc/{pid}").exists() and _sleeping_step(pid)]:
        assert time.monotonic() < deadline, f"the stopped steps' workers still run: {alive}"
        time.sleep(0.5)

    import optuna

    storage = open_storage(settings.tuning_db_url)
    (study,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).get_trials(deepcopy=False)
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "FAIL", "FAIL", "WAITING", "WAITING", "WAITING"], states
    stopped = {t.params["train.x"] for t in trials if t.state.name == "FAIL"}
    requeued = {
        t.system_attrs.get("fixed_params", {}).get("train.x") for t in trials if t.state.name == "WAITING"
    }
    assert stopped <= requeued  # a resumed tuning asks them again
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "KILLED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    killed = [c for c in children if c.info.status == "KILLED"]
    assert len(killed) == 2
    assert all(c.data.tags[TAG_STATE] == "interrupted" for c in killed)
    storage.remove_session()
    storage.engine.dispose()

    (marks / "slow").unlink()
    resumed = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert resumed.resumed_from == 1
    assert [t.state for t in resumed.trials].count("COMPLETE") == 4
    assert stopped <= {t.params["train.x"] for t in resumed.trials if t.state == "COMPLETE"}
    assert {c.data.tags[TAG_TRIAL] for c in killed} == {
        str(t.number) for t in resumed.trials if t.state == "FAIL"
    }


def _sleeping_step(pid: int) -> bool:
    """Whether ``pid`` is still a Ray worker (a pid reused by another program does not count)."""
    try:
        return b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
