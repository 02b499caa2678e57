import asyncio

import numpy as np
import pytest

from pave.serving.batching import MicroBatcher


def doubling(calls):
    def predict(x):
        calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x[:, 0] * 2}

    return predict


@pytest.mark.parametrize("inline", [True, False])
def test_concurrent_requests_are_batched_and_answered_each_with_its_rows(inline):
    calls, sizes = [], []
    batcher = MicroBatcher(doubling(calls), max_batch_size=64, inline=inline, on_batch=sizes.append)

    async def main():
        return await asyncio.gather(
            *(batcher.predict(np.array([[float(i)], [float(i) + 0.5]]), 2) for i in range(40))
        )

    results = asyncio.run(main())
    for i, result in enumerate(results):
        assert result["y"].tolist() == [2.0 * i, 2.0 * i + 1]
    assert sum(sizes) == 40
    assert max(sizes) > 1  # concurrency produced at least one real batch
    assert len(calls) < 40


def test_a_lone_request_is_predicted_directly():
    calls, sizes = [], []
    batcher = MicroBatcher(doubling(calls), inline=True, on_batch=sizes.append)

    async def main():
        return [await batcher.predict(np.array([[float(i)]]), 1) for i in range(5)]

    results = asyncio.run(main())
    assert [r["y"].tolist() for r in results] == [[0.0], [2.0], [4.0], [6.0], [8.0]]
    assert sizes == [1] * 5
    assert batcher.idle


def test_batches_are_capped_at_max_batch_size():
    calls, sizes = [], []
    batcher = MicroBatcher(doubling(calls), max_batch_size=4, inline=True, on_batch=sizes.append)

    async def main():
        await asyncio.gather(*(batcher.predict(np.array([[1.0]]), 1) for _ in range(20)))

    asyncio.run(main())
    assert max(sizes) <= 4
    assert sum(sizes) == 20


def test_a_failing_request_fails_alone():
    batcher = MicroBatcher(doubling([]), inline=True)

    async def main():
        return await asyncio.gather(
            *(batcher.predict(np.array([[-1.0 if i == 3 else float(i)]]), 1) for i in range(10)),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert isinstance(results[3], ValueError)
    assert [r["y"].tolist() for i, r in enumerate(results) if i != 3] == [
        [2.0 * i] for i in range(10) if i != 3
    ]


@pytest.mark.parametrize("alone", [True, False])
def test_the_only_open_request_predicts_without_waiting_for_a_loop_turn(alone):
    order = []

    def predict(x):
        order.append("predict")
        return {"y": x[:, 0]}

    batcher = MicroBatcher(predict, inline=True)

    async def main():
        asyncio.get_running_loop().call_soon(order.append, "loop turn")
        await batcher.predict(np.array([[1.0]]), 1, alone=alone)

    asyncio.run(main())
    # alone: nothing else can join a batch, so no yield; otherwise one loop turn lets others queue
    assert order[0] == ("predict" if alone else "loop turn")
