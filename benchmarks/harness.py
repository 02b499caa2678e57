"""What every benchmark script here needs: a free port on loopback and the machine's load average.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and they import
it as ``harness``.
"""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg reports them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
