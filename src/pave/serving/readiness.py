"""Readiness of a gateway of several worker processes: ready when every live worker is.

Each worker of a gateway polls the deployments and loads the models on its own, so right after a
deploy one worker may answer while another is still loading. A client or a readiness probe asks
one worker (the one its connection landed on), but "ready" promises that *the gateway* can answer,
whichever worker takes the next request. So each worker publishes what it has loaded, and a ready
answer reads every live worker's state:

- each worker writes its :func:`state` (read the deployments? loading what? each version's state)
  to ``<pid>.json`` in a directory of the gateway's own (``PAVE_GATEWAY_READINESS``, set by
  ``run_gateway`` next to the metrics files, emptied at every start), atomically (a temporary file
  renamed), when it changes: when a sync starts loading, when it swaps the table, and at each poll;
- a ready route reads the other workers' files (those of live pids; a dead worker's file is
  ignored) and its own state from memory, and answers 503 naming the worker that is not ready.

The files are host-local by construction: a gateway's workers run on one host; different gateways
(hosts) stay independent. Nothing here runs on the inference path: the state is written by the
poll loop and read by the ready routes only. A gateway of one process has no directory and
answers from its own state alone.

A worker that is still starting (reading the deployments and loading them before it serves) has
no file yet, and accepts no connection either: the others answer for the gateway meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pave.errors import Unavailable
from pave.processes import alive

if TYPE_CHECKING:
    from pave.serving.table import DeploymentTable

log = logging.getLogger(__name__)

# The directory of the workers' published states; set by ``run_gateway`` before the workers start.
READINESS_ENV = "PAVE_GATEWAY_READINESS"
# The header of a ready probe's 503 when the version failed to load (not: is still loading), so a
# waiting client (`pave deploy --wait`) stops with the reason instead of polling until its timeout.
LOAD_FAILED_HEADER = "pave-load-failed"


class LoadFailed(Unavailable):
    """A version the gateway tried to load and could not: the deployment keeps its previous ones."""

    code = "load_failed"


NOT_READY = ("loading", "failed")  # a scaled-to-zero ("unloaded") version is ready: a request loads it

State = dict[str, Any]


def state(table: DeploymentTable) -> State:
    """What a worker can answer for: its table's deployments, their versions' states, its loads.

    ``loading`` lists the versions a sync is loading for the first time (not in the table yet);
    ``models`` maps each deployment in the table to its routed versions and every version's state.
    """
    return {
        "pid": os.getpid(),
        "synced": table.synced,
        "loading": sorted([name, version] for name, version in table.loading),
        "models": {
            name: {
                "routed": [ref.version for ref in entry.deployment.versions],
                "versions": {version: runtime.state for version, runtime in entry.runtimes.items()},
            }
            for name, entry in table.entries.items()
        },
    }


class Workers:
    """This worker's published state and the other workers' (``directory`` None: no others)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._published: State | None = None

    @classmethod
    def from_env(cls) -> Workers:
        value = os.environ.get(READINESS_ENV)
        return cls(Path(value) if value else None)

    def publish(self, current: State) -> None:
        """Write this worker's state for the others, if it changed since the last write."""
        if current == self._published or self.directory is None:
            self._published = current
            return
        path = self.directory / f"{self.pid}.json"
        tmp = self.directory / f".{self.pid}.tmp"
        try:
            tmp.write_bytes(orjson.dumps(current))
            tmp.replace(path)  # a reader sees the old state or the new one, never half of one
        except OSError as exc:  # the others then read the previous state: said, serving goes on
            log.warning("gateway: this worker's readiness could not be written to %s (%s)", path, exc)
            return
        self._published = current

    def others(self) -> list[State]:
        """The states the other live workers published (a dead worker's file is ignored)."""
        if self.directory is None:
            return []
        found = []
        for path in self.directory.glob("*.json"):
            pid = int(path.stem) if path.stem.isdigit() else 0
            if pid in (0, self.pid) or not alive(pid):
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):  # gone since the listing
                found.append(orjson.loads(path.read_bytes()))
        return found

    def withdraw(self) -> None:
        """Remove this worker's file (it stops serving)."""
        if self.directory is not None:
            with contextlib.suppress(OSError):
                (self.directory / f"{self.pid}.json").unlink()
        self._published = None


def server_unready(states: Iterable[State]) -> str | None:
    """Why the gateway is not ready: a worker serves without having read the deployments.

    A deploy in flight does not make the whole gateway unready, only its model (``model_unready``):
    every gateway loads a new model at about the same time, and a probe that took them all out of
    service would stop every other model's traffic with them.
    """
    for worker in states:
        if not worker["synced"]:
            return f"gateway worker {worker['pid']} has not read its deployments yet"
    return None


def model_unready(states: Iterable[State], name: str, version: str | None) -> str | None:
    """Why the deployment (its ``version``; default: every routed one) cannot answer in every worker.

    A deployment is not ready while a worker is loading a new version of it (a deploy in flight),
    nor in a worker that has not loaded it yet or whose version failed to load or is loading.
    """
    for worker in states:
        if not worker["synced"]:
            return f"gateway worker {worker['pid']} has not read its deployments yet"
        for loading_name, loading_version in worker["loading"]:
            if loading_name == name and version in (None, loading_version):
                return _loading(name, loading_version, worker)
        model = worker["models"].get(name)
        if model is None:
            return (
                f"model '{name}' is not loaded in gateway worker {worker['pid']} yet: retry in a few seconds"
            )
        for v in [version] if version else model["routed"]:
            current = model["versions"].get(v)
            if current is None or current in NOT_READY:
                what = "failed to load" if current == "failed" else "is not loaded yet"
                return f"model '{name}' version {v} {what} in gateway worker {worker['pid']}"
    return None


def gateway_models(states: list[State]) -> dict[str, dict[str, str]]:
    """Each deployment's versions and their state across the gateway's workers (the heartbeat's
    ``models``, shown by ``pave status``): a state all workers share as it is, else how many
    workers are in each, e.g. ``{"churn": {"2": "loaded in 1 of 2 workers, loading in 1"}}``."""
    known = {(name, v) for w in states for name, model in w["models"].items() for v in model["versions"]}
    known |= {(name, version) for w in states for name, version in w["loading"]}
    merged: dict[str, dict[str, str]] = {}
    for name in sorted({name for name, _ in known}):
        versions = sorted(v for n, v in known if n == name)
        merged[name] = {}
        for version in versions:
            counts: dict[str, int] = {}
            for worker in states:
                current = worker["models"].get(name, {}).get("versions", {}).get(version, "not loaded")
                if [name, version] in worker["loading"]:
                    current = "loading"
                counts[current] = counts.get(current, 0) + 1
            if len(counts) == 1:
                merged[name][version] = next(iter(counts))
            else:
                first, *rest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                merged[name][version] = f"{first[0]} in {first[1]} of {len(states)} workers" + "".join(
                    f", {state} in {count}" for state, count in rest
                )
    return merged


def _loading(name: str, version: str, worker: State) -> str:
    return (
        f"model '{name}' version {version} is loading in gateway worker {worker['pid']}: "
        "retry in a few seconds"
    )
