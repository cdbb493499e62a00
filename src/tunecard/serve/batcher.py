"""Dynamic batching: the texts of concurrent requests predicted together, in one model thread.

Each request puts its texts in a queue and awaits its answers. A single collector takes the oldest request and
adds the requests behind it, and runs the batch through `predict` (the Predictor's own path: packing, bf16 with
the fp32 recheck) in one worker thread, so the event loop keeps accepting and answering (`/health`) while the
model runs. A batch starts when it holds `max_batch_size` texts, or when as many requests wait as there were at
the end of the last batch (the requests it answered and those that queued while it ran: each of those clients
may be sending its next request), or at the latest `max_wait_ms` after its oldest request arrived or the last
batch ended, whichever is later. So a client alone is never kept waiting for company; N clients that each send
their next request when answered get batches of N, not two halves taking turns (each half arriving while the
other runs, which halves the batch for good: at concurrency 32 on the 2-core Xeon, 300-330 requests/s in
batches of 16 against 440-455 in batches of 32, docs/serving.md); and a batch waits at most `max_wait_ms` for
clients that do not come back.

The model thread (`new_model_thread`) should also be the thread that loaded the model, and no other thread should
run torch: each thread that runs torch's parallel kernels gets its own OpenMP team, and once two teams exist on
the 2-core Xeon every call is slower, whichever thread makes it (one sentence: 6.8-7.1 ms while one thread had
ever run the model, 12.6-14.3 ms once a second had, in either of them; docs/serving.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


def new_model_thread() -> ThreadPoolExecutor:
    """The one thread that loads the model and runs every prediction (`DynamicBatcher(model_thread=...)`)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunecard-model")


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatcherStats:
    """Counters for /health: requests and texts answered, batches run, the largest batch."""

    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0


class DynamicBatcher:
    """Gathers the texts of concurrent requests into batches for `predict`.

    Args:
        predict: texts -> one answer per text, in order (`Predictor.predict`); called in one worker thread only.
        max_batch_size: most texts in a batch. A request with more texts than this runs as a batch of its own.
        max_wait_ms: how long the oldest waiting request may wait for others to join its batch.
        model_thread: the thread (a one-worker executor, `new_model_thread()`) that loaded the model, to run `predict`
            in the same one; the batcher shuts it down when it stops. None: a thread of its own.
    """

    def __init__(self, predict: Callable[[list[str]], list], max_batch_size: int = 64, max_wait_ms: float = 5.0,
                 model_thread: ThreadPoolExecutor | None = None):
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatcherStats()
        self._pending: deque[_Request] = deque()  # requests not yet in a batch, oldest first
        self._pending_texts = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = model_thread
        self._waiting = 0
        self._expected = 0  # requests answered by the last batch plus those queued then (0: no batch yet)
        self._answered_at = 0.0  # when the last batch's answers were handed out

    @property
    def waiting(self) -> int:
        """Requests queued or being predicted."""
        return self._waiting

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        if self._executor is None:  # none given, or started again after a stop
            self._executor = new_model_thread()
        self._task = asyncio.create_task(self._run(), name="tunecard-batcher")

    async def stop(self) -> None:
        """Answer what is queued, then stop the collector and the model thread."""
        if self._task is None:
            return
        while self._waiting and not self._task.done():
            await asyncio.sleep(0.01)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._executor.shutdown(wait=True)
        self._executor = self._task = None

    async def submit(self, texts: list[str]) -> list:
        """The answers for `texts`, predicted in a batch with whatever other requests are waiting."""
        if not texts:
            return []
        if self._task is None:  # an app mounted in another one, whose lifespan did not start ours
            await self.start()
        request = _Request(texts, asyncio.get_running_loop().create_future())
        self._waiting += 1
        try:
            self._pending.append(request)
            self._pending_texts += len(texts)
            self._arrived.set()
            return await request.future
        finally:
            self._waiting -= 1

    async def _next_batch(self) -> list[_Request]:
        """The oldest request and those behind it that fit, once the batch is full or the oldest waited enough."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = max(self._pending[0].arrived, self._answered_at) + self.max_wait
        while self._pending_texts < self.max_batch_size and not (
                self._expected and len(self._pending) >= self._expected):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._arrived.clear()
            try:  # waiting on an event, not on a queue: a timeout loses no request
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].texts) <= self.max_batch_size):
            request = self._pending.popleft()
            self._pending_texts -= len(request.texts)
            batch.append(request)
            size += len(request.texts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            batch = [request for request in batch if not request.future.cancelled()]  # its client has gone
            if not batch:
                continue
            texts = [text for request in batch for text in request.texts]
            try:
                answers = await loop.run_in_executor(self._executor, self.predict, texts)
            except Exception as error:  # noqa: BLE001 - every waiting request gets the failure, the server goes on
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self._expected = len(batch) + len(self._pending)
            self._answered_at = time.monotonic()
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(texts))
            start = 0
            for request in batch:
                end = start + len(request.texts)
                if not request.future.done():
                    request.future.set_result(answers[start:end])
                    self.stats.requests += 1
                    self.stats.texts += len(request.texts)
                start = end
