"""The one thread that touches TensorFlow and Milvus, and the micro-batching of searches that arrive together.

HTTP handlers never call the model or the store themselves: they hand a job to ``Worker`` and await its future.
The worker takes whatever has queued up (waiting a few milliseconds for more when a search arrives alone),
groups the searches by their parameters and runs one ``search_images`` call per group, so 16 clients asking
at once cost one model call over 16 images instead of 16 calls.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..search import SearchOptions, search_images
from ..verdict import Verifier

_STOP = object()


@dataclass
class _Search:
    source: tuple[bytes, str]  # (image bytes, label): the source form search_images takes
    options: SearchOptions  # searches with equal options share one search_images call
    future: Future = field(default_factory=Future)


@dataclass
class _Call:
    fn: Callable
    args: tuple
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    searches: int = 0
    search_calls: int = 0  # search_images calls: one model call per group of searches taken together
    largest_batch: int = 0
    calls: int = 0  # everything else: puts, deletes, counts, lookups

    def as_dict(self) -> dict:
        mean = self.searches / self.search_calls if self.search_calls else 0.0
        return {**self.__dict__, "mean_batch": round(mean, 2)}


class Worker:
    """Opens the collection and loads the model in its own thread, then runs every job there, in arrival order.

    ``opener`` returns ``(store, collection, embedder)``; ``window``: seconds a lone search waits for company;
    ``max_batch``: most searches taken into one model call.
    """

    def __init__(self, opener: Callable, window: float = 0.005, max_batch: int = 32):
        self.opener = opener
        self.window = window
        self.max_batch = max_batch
        self.stats = BatchStats()
        self.store = self.collection = self.embedder = None
        # One verifier for the server's life: stored images' keypoints are read once, then served from its cache.
        self.verifier = Verifier()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="imgsearch-worker", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Worker:
        """Open the store and load the model; raises what opening raised (a locked database, missing weights)."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self):
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- jobs -----------------------------------------------------------------------------------
    def search(self, image: bytes, label: str, options: SearchOptions) -> Future:
        """A future QueryResult for one query image."""
        job = _Search((image, label), options)
        self._queue.put(job)
        return job.future

    def call(self, fn: Callable, *args) -> Future:
        """A future of ``fn(collection, embedder, *args)``, run in the worker thread."""
        job = _Call(fn, args)
        self._queue.put(job)
        return job.future

    # -- the thread -----------------------------------------------------------------------------
    def _run(self):
        try:
            self.store, self.collection, self.embedder = self.opener()
            self.embedder.model  # noqa: B018  (load now: the first request should not pay for TensorFlow)
        except BaseException as e:  # noqa: BLE001  (handed to start(), which raises it in the caller's thread)
            self._error = e
            if self.store is not None:  # opened, but the weights failed: release the database
                self.store.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                jobs = self._take()
                stop = _STOP in jobs
                self._execute([job for job in jobs if job is not _STOP])
                if stop:
                    return
        finally:
            self.store.close()

    def _take(self) -> list:
        """The next job plus whatever queued meanwhile; a search waits up to ``window`` for others to join it."""
        jobs = [self._queue.get()]
        deadline = time.monotonic() + self.window
        while sum(isinstance(job, _Search) for job in jobs) < self.max_batch and jobs[-1] is not _STOP:
            try:
                jobs.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not any(isinstance(job, _Search) for job in jobs):
                break
            try:
                jobs.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break
        return jobs

    def _execute(self, jobs: list):
        groups: dict[SearchOptions, list[_Search]] = {}
        # A request whose client went away (its future cancelled) is dropped before it costs anything.
        for job in [job for job in jobs if job.future.set_running_or_notify_cancel()]:
            if isinstance(job, _Search):
                groups.setdefault(job.options, []).append(job)
                continue
            self.stats.calls += 1
            try:
                job.future.set_result(job.fn(self.collection, self.embedder, *job.args))
            except Exception as e:  # noqa: BLE001  (the caller's request fails with it; the worker goes on)
                job.future.set_exception(e)
        for searches in groups.values():
            self.stats.searches += len(searches)
            self.stats.search_calls += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(searches))
            sources = [job.source for job in searches]
            try:
                results = list(search_images(self.collection, self.embedder, sources, searches[0].options,
                                             batch_size=len(sources), verifier=self.verifier))
            except Exception as e:  # noqa: BLE001  (a bad parameter fails the requests that share it, no others)
                for job in searches:
                    job.future.set_exception(e)
                continue
            # search_images yields one result per (bytes, label) source, in order.
            for job, result in zip(searches, results):
                job.future.set_result(result)
