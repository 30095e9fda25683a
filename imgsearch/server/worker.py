"""The one thread that runs TensorFlow and writes to Milvus, and the micro-batching of searches that arrive together.

HTTP handlers never call the model or the store themselves: they hand a job to ``Worker`` and await its future.
The worker takes whatever has queued up (waiting a few milliseconds for more when a search arrives alone),
groups the searches by their options and runs one ``search_images`` call per group, so 16 clients asking
at once cost one model call over 16 images instead of 16 calls.

The queue is bounded (``max_queue`` jobs waiting): past it ``Overloaded`` is raised at once, which the server
answers 503 with a Retry-After, instead of letting every client's wait grow without limit.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..search import SearchOptions, search_images
from ..verdict import Verifier

_STOP = object()
DEFAULT_MAX_QUEUE = 32  # one full default batch waiting behind the one running
MAX_RETRY_AFTER = 60  # seconds: a longer estimate is no better advice than "a minute"


class Overloaded(Exception):
    """The worker's queue is full: the request was refused before any work, and may be sent again later."""

    def __init__(self, waiting: int, retry_after: int):
        self.waiting = waiting
        self.retry_after = retry_after
        super().__init__(f"the server is busy: {waiting} requests are waiting for the model; "
                         f"try again in {retry_after} s")


@dataclass
class SearchJob:
    source: tuple[bytes, str]  # (image bytes, label): the source form search_images takes
    options: SearchOptions  # searches with equal options share one search_images call
    future: Future = field(default_factory=Future)
    batch: int = 0  # how many searches shared its model call, set before its result


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
    refused: int = 0  # jobs refused because the queue was full
    batch_sizes: Counter = field(default_factory=Counter)  # searches per search_images call -> how many calls
    busy_seconds: float = 0.0  # time spent running jobs: with ``jobs`` done, the pace of the queue
    jobs_done: int = 0

    def record_batch(self, size: int):
        self.searches += size
        self.search_calls += 1
        self.largest_batch = max(self.largest_batch, size)
        self.batch_sizes[size] += 1

    def seconds_per_job(self) -> float:
        return self.busy_seconds / self.jobs_done if self.jobs_done else 1.0

    def as_dict(self) -> dict:
        mean = self.searches / self.search_calls if self.search_calls else 0.0
        return {"searches": self.searches, "search_calls": self.search_calls, "largest_batch": self.largest_batch,
                "calls": self.calls, "refused": self.refused, "mean_batch": round(mean, 2)}


class CountingVerifier(Verifier):
    """The verdict's verifier, counting its checks (one per query and stored image judged) for /metrics."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks = 0
        self._checks_lock = threading.Lock()  # judged in the search's pool threads

    def judge(self, *args, **kwargs):
        with self._checks_lock:
            self.checks += 1
        return super().judge(*args, **kwargs)


class Worker:
    """Opens the collection and loads the model in its own thread, then runs every job there, in arrival order.

    ``opener`` returns ``(store, collection, embedder)``; ``window``: seconds a lone search waits for company;
    ``max_batch``: most searches taken into one model call; ``max_queue``: most jobs waiting to be taken.
    """

    def __init__(self, opener: Callable, window: float = 0.005, max_batch: int = 32,
                 max_queue: int = DEFAULT_MAX_QUEUE):
        self.opener = opener
        self.window = window
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.stats = BatchStats()
        self.store = self.collection = self.embedder = None
        # One verifier for the server's life: stored images' keypoints are read once, then served from its cache.
        self.verifier = CountingVerifier()
        self._queue: queue.Queue = queue.Queue()
        self._admit = threading.Lock()  # the check of the bound and the put, as one step
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
        """Run what is queued (requests whose clients went away are dropped), then close the store."""
        if self._thread.is_alive():
            self._queue.put(_STOP)  # never refused: it is not a request
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- jobs -----------------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Jobs queued and not yet taken: what a new request would wait behind (besides the batch running)."""
        return self._queue.qsize()

    def check_room(self):
        """Raise ``Overloaded`` when a new job would be refused: lets a request be refused before its upload."""
        waiting = self.waiting
        if waiting >= self.max_queue:
            self.stats.refused += 1
            raise Overloaded(waiting, self.retry_after(waiting))

    def retry_after(self, waiting: int) -> int:
        """Seconds until the queue has likely drained: the jobs waiting at the pace jobs have been done."""
        seconds = waiting * self.stats.seconds_per_job()
        return max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))

    def search(self, image: bytes, label: str, options: SearchOptions) -> SearchJob:
        """The job of one query image: its ``future`` QueryResult, then its ``batch``; raises ``Overloaded`` when
        the queue is full."""
        job = SearchJob((image, label), options)
        self._submit(job)
        return job

    def call(self, fn: Callable, *args) -> Future:
        """A future of ``fn(collection, embedder, *args)``, run in the worker thread; may raise ``Overloaded``."""
        return self._submit(_Call(fn, args))

    def _submit(self, job):
        with self._admit:
            self.check_room()
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
                started = time.monotonic()
                done = self._execute([job for job in jobs if job is not _STOP])
                self.stats.busy_seconds += time.monotonic() - started
                self.stats.jobs_done += done
                if stop:
                    return
        finally:
            self.store.close()

    def _take(self) -> list:
        """The next job plus whatever queued meanwhile; a search waits up to ``window`` for others to join it."""
        jobs = [self._queue.get()]
        deadline = time.monotonic() + self.window
        while sum(isinstance(job, SearchJob) for job in jobs) < self.max_batch and jobs[-1] is not _STOP:
            try:
                jobs.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not any(isinstance(job, SearchJob) for job in jobs):
                break
            try:
                jobs.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break
        return jobs

    def _execute(self, jobs: list) -> int:
        """Run the jobs whose requests still wait (a cancelled future: its client went away); returns how many."""
        groups: dict[SearchOptions, list[SearchJob]] = {}
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        for job in live:
            if isinstance(job, SearchJob):
                groups.setdefault(job.options, []).append(job)
                continue
            self.stats.calls += 1
            try:
                job.future.set_result(job.fn(self.collection, self.embedder, *job.args))
            except Exception as e:  # noqa: BLE001  (the caller's request fails with it; the worker goes on)
                job.future.set_exception(e)
        for options, searches in groups.items():
            self._search_group(options, searches)
        return len(live)

    def _search_group(self, options: SearchOptions, searches: list[SearchJob]):
        self.stats.record_batch(len(searches))
        sources = [job.source for job in searches]
        try:
            results = list(search_images(self.collection, self.embedder, sources, options,
                                         batch_size=len(sources), verifier=self.verifier))
        except Exception as e:  # noqa: BLE001  (a bad parameter fails the requests that share it, no others)
            for job in searches:
                job.future.set_exception(e)
            return
        # search_images yields one result per (bytes, label) source, in order.
        for job, result in zip(searches, results):
            job.batch = len(searches)
            job.future.set_result(result)
