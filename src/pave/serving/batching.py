"""Micro-batching of concurrent requests to one model version.

A request that finds the model idle and is the only request the server holds predicts at once
(the server says how many it holds: ``OPEN_REQUESTS``); at concurrency 1 batching costs nothing.
One that finds the model idle with other requests around (or under a server that does not say)
yields to the event loop once, so requests already read from their sockets can join, and predicts
alone when nobody joined. Otherwise requests queue, and one drain task forms batches: it keeps
collecting while each loop turn brings new requests, up to ``max_batch_size`` requests or
``max_wait`` seconds, then predicts the concatenated rows once and hands each request its slice.

Fast models (see ``LoadedModel.inline``) predict on the event loop, slow ones in a thread. When a
batch fails, its requests are retried one by one, so one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pave.serving.schema import Features

Outputs = dict[str, np.ndarray]
# The ASGI scope key under which Pave's HTTP protocol (``pave.serving.http``) puts the worker's
# set of open request tasks.
OPEN_REQUESTS = "pave.open_requests"


def concat(parts: list[Features]) -> Features:
    """Rows of several model inputs stacked into one input."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    if isinstance(first, pd.DataFrame):
        return pd.concat(parts, ignore_index=True, copy=False)
    return {key: np.concatenate([p[key] for p in parts], axis=0) for key in first}


def split(outputs: Outputs, sizes: list[int]) -> list[Outputs]:
    """The outputs of a batch cut back into one piece per request."""
    pieces: list[Outputs] = []
    start = 0
    for size in sizes:
        end = start + size
        pieces.append({name: array[start:end] for name, array in outputs.items()})
        start = end
    return pieces


class MicroBatcher:
    """Batches concurrent predictions of one model version.

    Args:
        predict: the model's predict function (model input -> named outputs).
        max_batch_size: most requests in one batch; 1 disables batching.
        max_wait: longest time (seconds) a batch waits for more requests.
        inline: predict on the event loop instead of in a thread.
        batchable: outputs have one row per input row, so batches can be split back.
        on_batch: called with the number of requests of every prediction made.
    """

    def __init__(
        self,
        predict: Callable[[Features], Outputs],
        *,
        max_batch_size: int = 64,
        max_wait: float = 0.002,
        inline: bool = False,
        batchable: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.inline = inline
        self.batching = batchable and max_batch_size > 1
        self._on_batch = on_batch or (lambda n: None)
        self._pending: list[tuple[Features, int, asyncio.Future[Outputs]]] = []
        self._arriving = 0
        self._active = 0
        self._worker: asyncio.Task[None] | None = None

    async def predict(self, features: Features, n_rows: int, *, alone: bool = False) -> Outputs:
        """Predict one request's rows, batched with whatever runs concurrently.

        Args:
            alone: the server holds no other request, so nothing can join a batch: no yield.
        """
        if not self.batching:
            self._on_batch(1)
            return await self._run(features)
        if not (self._active or self._pending or self._arriving):
            if not alone:
                self._arriving += 1
                try:
                    await asyncio.sleep(0)  # requests already read from their sockets get to queue up
                finally:
                    self._arriving -= 1
            if not (self._pending or self._active):
                self._active += 1
                try:
                    return await self._run(features)
                finally:
                    self._active -= 1
                    self._on_batch(1)
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._pending.append((features, n_rows, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    @property
    def idle(self) -> bool:
        return not (self._active or self._pending or self._arriving)

    async def _run(self, features: Features) -> Outputs:
        if self.inline:
            return self._predict(features)
        return await asyncio.get_running_loop().run_in_executor(None, self._predict, features)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                deadline = loop.time() + self.max_wait
                while len(self._pending) < self.max_batch_size:
                    size = len(self._pending)
                    await asyncio.sleep(0)
                    if len(self._pending) == size or loop.time() >= deadline:
                        break
                batch = self._pending[: self.max_batch_size]
                del self._pending[: self.max_batch_size]
                self._active += 1
                try:
                    await self._predict_batch(batch)
                finally:
                    self._active -= 1
        finally:
            self._worker = None

    async def _predict_batch(self, batch: list[tuple[Features, int, asyncio.Future[Outputs]]]) -> None:
        self._on_batch(len(batch))
        if len(batch) == 1:
            features, _, future = batch[0]
            await self._settle(future, features)
            return
        try:
            outputs = await self._run(concat([item[0] for item in batch]))
            pieces = split(outputs, [item[1] for item in batch])
        except Exception:
            for features, _, future in batch:  # isolate the request that failed
                await self._settle(future, features)
            return
        for (_, _, future), piece in zip(batch, pieces, strict=True):
            if not future.done():
                future.set_result(piece)

    async def _settle(self, future: asyncio.Future[Outputs], features: Any) -> None:
        try:
            result = await self._run(features)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
