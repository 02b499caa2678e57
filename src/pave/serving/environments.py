"""Per-model environments: a model whose libraries differ from the gateway's runs in its own process.

A pickled (or skops-saved) model is only safe to load with the library version it was saved
with. When a model's pinned requirements (``requirements.txt`` beside its MLmodel) name a
library that loads models (scikit-learn, LightGBM, XGBoost, PyTorch, ...) at another major.minor
version than the gateway's, or one the gateway lacks, or numpy at another major version, the
gateway does not load it at all: :func:`own_environment_reason` says why, :func:`ensure_environment`
builds a virtualenv from the model's requirements once (cached under ``envs/<hash>`` by the hash
of the requirements; ``mlflow`` becomes ``mlflow-skinny`` at the same version, which loads models
without the tracking server's dependencies), and :class:`WorkerModel` runs ``worker_main.py``
there and sends it each prediction over a pair of pipes, in the raw tensor layout: nothing is
pickled, and nothing of the model is unpickled in the gateway.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pave.errors import InvalidInput, Unavailable
from pave.serving import binary
from pave.serving.protocol import datatype_of

log = logging.getLogger(__name__)

# Libraries that deserialize models: a version mismatch in any of them is a reason for an own env.
LOADERS = (
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "torch",
    "onnxruntime",
    "catboost",
    "statsmodels",
    "tensorflow",
    "keras",
    "prophet",
)
# What a package is installed as here when its requirement names another distribution.
_ALIASES = {"xgboost": ("xgboost", "xgboost-cpu")}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*$")
BUILD_TIMEOUT = 1800.0


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: str) -> dict[str, str]:
    """``name -> version`` of the exact pins in a requirements file (other lines are kept, not read)."""
    found = {}
    for line in requirements.splitlines():
        match = _PIN.match(line.split("#", 1)[0])
        if match:
            found[_canonical(match[1])] = match[2]
    return found


def _installed(name: str) -> str | None:
    for candidate in _ALIASES.get(name, (name,)):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(candidate)
    return None


def _release(version: str, parts: int) -> tuple[str, ...]:
    return tuple(re.split(r"[.+]", version)[:parts])


def own_environment_reason(model_dir: Path) -> str | None:
    """Why the model at ``model_dir`` must run in its own environment, or None to load it here."""
    requirements = model_dir / "requirements.txt"
    if not requirements.is_file():
        return None
    pinned = pins(requirements.read_text(errors="replace"))
    for name in LOADERS:
        wanted = pinned.get(name)
        if wanted is None:
            continue
        here = _installed(name)
        if here is None:
            return f"it needs {name}=={wanted}, which the gateway does not have"
        if _release(here, 2) != _release(wanted, 2):
            return f"it was saved with {name} {wanted}, the gateway has {here}"
    wanted_numpy = pinned.get("numpy")
    if wanted_numpy is not None and _release(wanted_numpy, 1) != _release(np.__version__, 1):
        return f"it was saved with numpy {wanted_numpy}, the gateway has {np.__version__}"
    return None


def environment_requirements(model_dir: Path) -> str:
    """The requirements an own environment installs: the model's, with mlflow as mlflow-skinny."""
    lines = []
    for line in (model_dir / "requirements.txt").read_text(errors="replace").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith(("-", "git+", "http:", "https:", "file:", "/", ".")):
            raise InvalidInput(
                f"the model's requirement {stripped!r} is not a package from the registry",
                hint="log the model with plain `name==version` requirements (pip_requirements=...)",
            )
        match = _PIN.match(stripped)
        if match and _canonical(match[1]) == "mlflow":
            stripped = f"mlflow-skinny=={match[2]}"
        lines.append(stripped)
    names = {_canonical(re.split(r"[=<>~!\[ ;]", line)[0]) for line in lines}
    if "mlflow-skinny" in names and "pandas" not in names:
        lines.append("pandas")  # mlflow brings pandas along; mlflow-skinny does not, and pyfunc needs it
    if _saved_with_skops(model_dir) and "skops" not in names:
        # MLflow saves scikit-learn models with skops but may leave it out of explicit requirements
        here = _installed("skops")
        lines.append(f"skops=={here}" if here else "skops")
    return "\n".join(sorted(lines)) + "\n"


def _saved_with_skops(model_dir: Path) -> bool:
    import yaml

    try:
        flavors = yaml.safe_load((model_dir / "MLmodel").read_text()).get("flavors", {})
    except (OSError, AttributeError, yaml.YAMLError):
        return False
    return bool(flavors.get("sklearn", {}).get("serialization_format") == "skops")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # the workers of one gateway build an environment once
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_environment(requirements: str, root: Path) -> Path:
    """The python of the virtualenv for ``requirements``, built under ``root`` if it is not yet.

    Raises:
        Unavailable: the environment could not be built (pip's last lines are in the message).
    """
    digest = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    target = root / digest
    python = target / "bin" / "python"
    if python.exists():
        return python
    with _locked(root / f"{digest}.lock"):
        if python.exists():
            return python
        staging = root / f"{digest}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("building the model environment %s (%d requirements)", digest, requirements.count("\n"))
        start = time.monotonic()
        (staging / "requirements.txt").parent.mkdir(parents=True)
        (staging / "requirements.txt").write_text(requirements)
        (staging / "constraints.txt").write_text(host_constraints(requirements))
        try:
            # no pip inside: the gateway's pip installs into it (no bootstrap), without byte-compiling
            # (the worker compiles what it imports, once)
            _run([sys.executable, "-m", "venv", "--without-pip", str(staging / "venv")])
            pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
            pip += ["--python", str(staging / "venv" / "bin" / "python"), "install", "--no-compile"]
            pip += ["-r", str(staging / "requirements.txt")]
            try:  # the platform's locked versions where the model pins nothing: its cached wheels
                _run([*pip, "-c", str(staging / "constraints.txt")])
            except Unavailable as exc:
                log.info(
                    "model environment %s: the locked versions do not fit (%s); resolving freely", digest, exc
                )
                _run(pip)
        except Unavailable:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # built aside and moved in one rename: a crash never leaves a half-built environment here
        (staging / "venv").rename(target)
        shutil.move(str(staging / "requirements.txt"), target / "pave-requirements.txt")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("model environment %s built in %.0f s", digest, time.monotonic() - start)
    return python


def host_constraints(requirements: str) -> str:
    """``name==version`` of every distribution installed here that ``requirements`` does not name:
    an environment's unpinned dependencies resolve to the gateway's own (locked) versions, whose
    wheels pip has cached, instead of whatever the index has newest."""
    named = {_canonical(re.split(r"[=<>~!\[ ;@]", line.strip())[0]) for line in requirements.splitlines()}
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) not in named and dist.version and "+" not in dist.version:
            found[_canonical(name)] = f"{name}=={dist.version}"
    return "".join(f"{line}\n" for _, line in sorted(found.items()))


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"building a model environment took over {BUILD_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise Unavailable(f"building the model's environment failed: {tail}")


class WorkerModel:
    """A model loaded in its own process (``worker_main.py`` run by the environment's python).

    ``predict`` is blocking and thread-safe (one prediction at a time on the pipes); the gateway's
    batcher calls it in a thread. A worker that dies is started again on the next prediction.
    """

    def __init__(self, python: Path, model_dir: Path, kind: str, columns: list[str], output: str) -> None:
        self.python = python
        self.model_dir = model_dir
        self.kind = kind
        self.columns = columns
        self.output = output
        self.flavor = "pyfunc"
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: Any = None
        self._answers: Any = None
        with self._lock:
            self._start()

    def _start(self) -> None:
        to_worker, from_gateway = os.pipe()
        from_worker, to_gateway = os.pipe()
        script = Path(__file__).with_name("worker_main.py")
        # -I: isolated, so the script's own folder (pave/serving, whose http.py would shadow the
        # standard library's) is not on the worker's path, nor the gateway's PYTHONPATH
        self._process = subprocess.Popen(
            [str(self.python), "-I", str(script), str(self.model_dir), str(to_worker), str(to_gateway)],
            pass_fds=(to_worker, to_gateway),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            start_new_session=True,  # a Ctrl-C to the gateway's group is the gateway's to pass on
        )
        os.close(to_worker)
        os.close(to_gateway)
        self._requests = os.fdopen(from_gateway, "wb")
        self._answers = os.fdopen(from_worker, "rb")
        ready = self._read()
        if ready is None or not ready[0].get("ok"):
            error = ready[0].get("error") if ready else "the worker exited"
            self.close()
            raise Unavailable(f"the model's own environment could not load it: {error}")
        self.flavor = str(ready[0].get("flavor", "pyfunc"))

    def _read(self) -> tuple[dict[str, Any], bytes] | None:
        head = self._answers.read(8)
        if len(head) < 8:
            return None
        json_length, data_length = struct.unpack("<II", head)
        return orjson.loads(self._answers.read(json_length)), self._answers.read(data_length)

    def predict(self, features: Any) -> dict[str, np.ndarray]:
        """The model's outputs for ``features`` (a DataFrame, an array or a dict of arrays).

        Raises:
            ValueError: the model refused the input (the gateway answers 400 with its message).
            Unavailable: the worker died and could not be started again.
        """
        specs, data = _encode(_arrays(features, self.kind))
        document = orjson.dumps({"kind": self.kind, "arrays": specs, "output": self.output})
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                log.warning("the worker of %s is gone; starting it again", self.model_dir)
                self._start()
            self._requests.write(struct.pack("<II", len(document), len(data)) + document + data)
            self._requests.flush()
            answer = self._read()
        if answer is None:
            self.close()
            raise Unavailable(f"the worker of {self.model_dir} exited during a prediction")
        head, raw = answer
        if not head.get("ok"):
            raise ValueError(head.get("error", "the model failed"))
        out, offset = {}, 0
        for spec in head["arrays"]:
            out[spec["name"]] = binary.from_raw(
                spec["name"], spec["datatype"], spec["shape"], raw[offset : offset + spec["size"]]
            )
            offset += spec["size"]
        return out

    def close(self) -> None:
        process, self._process = self._process, None
        for stream in (self._requests, self._answers):
            with contextlib.suppress(Exception):
                stream.close()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def __del__(self) -> None:
        self.close()


def _arrays(features: Any, kind: str) -> dict[str, np.ndarray]:
    if isinstance(features, pd.DataFrame):
        return {str(c): features[c].to_numpy() for c in features.columns}
    if isinstance(features, dict):
        return dict(features)
    return {"input": np.asarray(features)}


def _encode(arrays: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], bytes]:
    specs, parts = [], []
    for name, array in arrays.items():
        datatype = datatype_of(array)
        raw = binary.to_raw(array, datatype)
        specs.append({"name": name, "datatype": datatype, "shape": list(array.shape), "size": len(raw)})
        parts.append(raw)
    return specs, b"".join(parts)
