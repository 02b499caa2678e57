"""Shared rich consoles and CLI state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _State:
    debug: bool = False


state = _State()


def print_json(data: Any) -> None:
    import orjson

    console.print_json(orjson.dumps(data, default=str).decode())
