"""Pave: the paved road from a notebook to a monitored production model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from pave.client import Client


def __getattr__(name: str) -> Any:
    # The SDK is imported on first use, so `import pave` stays cheap.
    if name == "Client":
        from pave.client import Client

        return Client
    raise AttributeError(name)
