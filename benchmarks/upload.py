"""Uploading a 1 GB dataset through the platform vs with boto3 straight to the same S3 server.

One S3-compatible server (moto's standalone server, in a process of its own), one platform on it
(`pave up --no-gateway` on SQLite, `PAVE_ARTIFACT_ROOT=s3://bench/pave`, tokens on, as a team
would run it), and one file of random bytes (generated here, deleted at the end). Two ways up:

- ``platform``: what `pave run` does with a dataset version on a client that has only PAVE_URL and
  PAVE_TOKEN: ``Client.objects(project).has()`` (HEAD) then ``.put()`` (a streamed PUT of the file
  to ``/api/v1/projects/P/datasets/SHA``; the control plane hashes it as it goes, sends it on in a
  multipart upload, verifies the digest, writes the manifest and indexes it);
- ``boto3``: ``boto3.client("s3").upload_file`` with its defaults (multipart, 10 threads), with
  the same AWS settings as the platform, to the same bucket.

``--rounds`` rounds (at least 3), the order alternating (platform first in odd rounds); between
two uploads the objects are deleted (the store would otherwise dedupe the second platform upload
to a HEAD) and each platform round uses a new project. Reported: seconds and MB/s per cell, the
platform/boto3 throughput ratio per round and its median, the load average before and after, and
the control plane's peak resident memory (VmHWM: it streams, so it stays far below the file).

    .venv/bin/python benchmarks/upload.py
    .venv/bin/python benchmarks/upload.py --mb 1024 --rounds 3

Unequal on purpose: the platform path checks the file's digest on the control plane (boto3 only
its parts' MD5s) and writes a manifest and an index row; the file's sha256 on the client is not
timed (`pave run` computes it anyway to version the data). Both run on this machine, with moto.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, load_average
from rich.console import Console
from rich.table import Table

console = Console()
BUCKET = "bench"


def wait(condition: Any, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def make_file(path: Path, megabytes: int) -> str:
    """Random bytes (incompressible), written in 8 MB blocks; answers their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(megabytes // 8):
            block = os.urandom(8 << 20)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's (or its largest child's) resident memory from /proc: VmHWM is the peak,
    VmRSS the current."""
    peak = 0
    for each in (pid, *_children(pid)):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(p) for p in found]
    return kids + [grandchild for kid in kids for grandchild in _children(kid)]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (None: this one), from /proc."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def empty(s3: Any) -> None:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=1024, help="file size in MB (multiple of 8)")
    parser.add_argument("--rounds", type=int, default=3, help="at least 3")
    args = parser.parse_args()
    import boto3

    from pave.client import Client

    s3_port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    processes = [moto]
    times: dict[str, list[float]] = {"platform": [], "boto3": []}
    cpu: dict[str, list[tuple[float, float, float]]] = {"platform": [], "boto3": []}
    console.print(f"load average before: {load_average()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="pave-upload-") as tmp:
        root = Path(tmp)
        try:
            wait(lambda: httpx.get(f"{aws['AWS_ENDPOINT_URL']}/", timeout=2).status_code < 500, "moto")
            s3 = boto3.client(
                "s3",
                endpoint_url=aws["AWS_ENDPOINT_URL"],
                aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
                region_name=aws["AWS_DEFAULT_REGION"],
            )
            s3.create_bucket(Bucket=BUCKET)
            home = root / "control-plane"
            home.mkdir()
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_", "AWS_"))}
            env |= aws | {"PAVE_HOME": str(home), "PAVE_ARTIFACT_ROOT": f"s3://{BUCKET}/pave"}
            with (root / "up.log").open("ab") as log:
                up = subprocess.Popen(
                    [sys.executable, "-m", "pave", "up", "--no-gateway", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            processes.append(up)
            url = f"http://127.0.0.1:{port}"
            wait(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "the control plane")
            token = json.loads((home / "credentials.json").read_text())["token"]
            with Client(url, token) as warm:  # the routes' first call imports and connects
                warm.create_project("warm-up")
                warm.has_object("warm-up", "datasets", "0" * 64)
            idle = memory_mb(up.pid, "VmHWM")
            data = root / "dataset.bin"
            console.print(f"writing {args.mb} MB of random bytes...")
            sha = make_file(data, args.mb)
            size = data.stat().st_size
            size_mb = size / 1e6
            with Client(url, token) as client:
                for n in range(args.rounds):
                    order = ["platform", "boto3"] if n % 2 == 0 else ["boto3", "platform"]
                    for way in order:
                        empty(s3)
                        before = (cpu_seconds(), cpu_seconds(up.pid), cpu_seconds(moto.pid))
                        started = time.perf_counter()
                        if way == "platform":
                            project = f"upload-{n}"
                            client.create_project(project)
                            objects = client.objects(project)
                            if not objects.has("datasets", sha):
                                objects.put("datasets", sha, data, {"filename": "dataset.bin"})
                            key = f"pave/datasets/{sha[:2]}/{sha}/dataset.bin"
                            assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size
                        else:
                            s3.upload_file(str(data), BUCKET, f"direct/{sha}/dataset.bin")
                        seconds = time.perf_counter() - started
                        after = (cpu_seconds(), cpu_seconds(up.pid), cpu_seconds(moto.pid))
                        used = tuple(b - a for a, b in zip(before, after, strict=True))
                        times[way].append(seconds)
                        cpu[way].append(used)  # type: ignore[arg-type]
                        console.print(
                            f"round {n + 1} {way}: {seconds:.1f} s, {size_mb / seconds:,.0f} MB/s; CPU s: "
                            f"client {used[0]:.1f}, control plane {used[1]:.1f}, moto {used[2]:.1f} "
                            f"(load {load_average()})"
                        )
            peak = memory_mb(up.pid)
            empty(s3)
        finally:
            for process in reversed(processes):
                stop(process)
    table = Table(title=f"{size_mb:,.0f} MB dataset: through the platform vs boto3 straight to S3 (moto)")
    for column in ("round", "platform s", "boto3 s", "platform MB/s", "boto3 MB/s", "platform / boto3"):
        table.add_column(column, justify="right")
    ratios = []
    for n, (platform, direct) in enumerate(zip(times["platform"], times["boto3"], strict=True)):
        ratios.append(direct / platform)
        table.add_row(
            str(n + 1),
            f"{platform:.1f}",
            f"{direct:.1f}",
            f"{size_mb / platform:,.0f}",
            f"{size_mb / direct:,.0f}",
            f"{direct / platform:.2f}",
        )
    console.print(table)
    console.print(
        f"throughput ratio platform / boto3 (median of {len(ratios)}): {statistics.median(ratios):.2f}"
    )
    console.print(
        f"control plane's peak resident memory: {peak:,.0f} MB after the uploads, {idle:,.0f} MB before "
        f"(file: {size_mb:,.0f} MB)"
    )
    console.print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
