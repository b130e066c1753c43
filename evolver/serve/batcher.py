"""One worker thread owns the model; what is queued together and shares a key runs as one batch.

Request handlers only enqueue and wait, so the model is never used by two threads at once, and
concurrent requests with the same adapter and sampling go through one batched `generate` (per-item
seeds keep each answer independent of its batch-mates).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Run = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass
class _Job:
    key: Hashable
    item: Any
    run: Run
    future: Future = field(default_factory=Future)


class Batcher:
    def __init__(self, max_batch: int = 64, gap_s: float = 0.005, max_wait_s: float = 0.1) -> None:
        self.max_batch = max_batch
        self.gap_s = gap_s
        self.max_wait_s = max_wait_s
        self._last = 1  # size of the previous batch: about how many clients are waiting to send again
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="evolver-serve-model", daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, item: Any, run: Run) -> Future:
        """Queue one item; `run(items)` (one result per item) is called with its batch on the worker."""
        if self._closed:
            raise RuntimeError("server is shutting down")
        job = _Job(key, item, run)
        self._q.put(job)
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        self._closed = True
        self._q.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            jobs, stop = [first], False
            # Clients answered by the previous batch send their next requests a few at a time: wait (up to
            # `max_wait_s`) for as many as that batch held, then take whatever follows within `gap_s`.
            # A lone client is answered at once; a crowd is served in full batches.
            deadline = time.monotonic() + self.max_wait_s
            while len(jobs) < self.max_batch:
                left = deadline - time.monotonic()
                wait = left if len(jobs) < self._last else min(self.gap_s, left)
                try:
                    j = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if j is None:
                    stop = True
                    break
                jobs.append(j)
            self._last = len(jobs)
            groups: dict[Hashable, list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for group in groups.values():
                for start in range(0, len(group), self.max_batch):
                    self._run(group[start:start + self.max_batch])
            if stop:
                return

    @staticmethod
    def _run(chunk: list[_Job]) -> None:
        try:
            results = chunk[0].run([j.item for j in chunk])
        except BaseException as err:  # handed to each waiting request, which turns it into a 500
            for j in chunk:
                j.future.set_exception(err)
            return
        for j, r in zip(chunk, results):
            j.future.set_result(r)
