"""The server worker's batching, directly: no model, no Milvus. A stand-in opener and a recording
``search_images`` show which searches share a call."""

from __future__ import annotations

import pytest

from imgsearch.search import QueryResult, SearchOptions
from imgsearch.server import worker as worker_module
from imgsearch.server.worker import Overloaded, Worker


class _Store:
    closed = False

    def close(self):
        self.closed = True


class _Embedder:
    model = "stand-in"  # the worker touches .model to load it at start


@pytest.fixture
def calls(monkeypatch) -> list:
    """Each search_images call the worker makes: (labels, options, batch_size)."""
    made = []

    def search_images(collection, embedder, sources, options, batch_size, verifier):
        made.append(([label for _, label in sources], options, batch_size))
        return [QueryResult(label, options.page, options.top_k) for _, label in sources]

    monkeypatch.setattr(worker_module, "search_images", search_images)
    return made


def _worker(**kwargs) -> Worker:
    return Worker(lambda: (_Store(), "collection", _Embedder()), **kwargs)


def _run(worker: Worker, jobs):
    """Start the worker once every job is queued (so it takes them together), and wait for them all."""
    worker.start()
    try:
        return [job.future.result(timeout=10) for job in jobs if not job.future.cancelled()]
    finally:
        worker.stop()


def test_equal_options_share_one_call_and_each_gets_its_own_result(calls):
    worker = _worker()
    jobs = [worker.search(b"x", f"q{i}", SearchOptions(top_k=5)) for i in range(3)]  # equal, not the same object
    results = _run(worker, jobs)
    assert [labels for labels, _, _ in calls] == [["q0", "q1", "q2"]]
    assert calls[0][2] == 3  # one model batch over the three
    assert [result.query for result in results] == ["q0", "q1", "q2"]
    assert [job.batch for job in jobs] == [3, 3, 3]


def test_different_options_do_not_share_a_call(calls):
    worker = _worker()
    jobs = [worker.search(b"x", "a1", SearchOptions(top_k=5)), worker.search(b"x", "b1", SearchOptions(top_k=6)),
            worker.search(b"x", "a2", SearchOptions(top_k=5)), worker.search(b"x", "c1", SearchOptions(owner="c"))]
    _run(worker, jobs)
    assert sorted(labels for labels, _, _ in calls) == [["a1", "a2"], ["b1"], ["c1"]]
    for labels, options, _ in calls:
        assert {job.options for job in jobs if job.source[1] in labels} == {options}
    assert worker.stats.search_calls == 3 and worker.stats.searches == 4 and worker.stats.largest_batch == 2


def test_a_cancelled_search_is_dropped_before_it_costs_anything(calls):
    worker = _worker()
    jobs = [worker.search(b"x", f"q{i}", SearchOptions()) for i in range(3)]
    assert jobs[1].future.cancel()  # its client went away while it waited
    _run(worker, jobs)
    assert [labels for labels, _, _ in calls] == [["q0", "q2"]]
    assert worker.stats.searches == 2


def test_max_batch_bounds_each_call(calls):
    worker = _worker(max_batch=2)
    jobs = [worker.search(b"x", f"q{i}", SearchOptions()) for i in range(5)]
    _run(worker, jobs)
    assert [len(labels) for labels, _, _ in calls] == [2, 2, 1]
    assert dict(worker.stats.batch_sizes) == {2: 2, 1: 1}


def test_a_full_queue_refuses_at_once_and_counts_it(calls):
    worker = _worker(max_queue=2)
    jobs = [worker.search(b"x", f"q{i}", SearchOptions()) for i in range(2)]
    with pytest.raises(Overloaded) as refused:
        worker.search(b"x", "one too many", SearchOptions())
    with pytest.raises(Overloaded):
        worker.call(lambda collection, embedder: None)  # every job waits in the same queue
    assert refused.value.waiting == 2 and refused.value.retry_after >= 1
    assert worker.stats.refused == 2
    _run(worker, jobs)
    assert [labels for labels, _, _ in calls] == [["q0", "q1"]]  # the refused ones never ran


def test_a_failing_call_fails_only_its_own_request(calls):
    worker = _worker()

    def broken(collection, embedder):
        raise RuntimeError("Milvus went away")

    failing = worker.call(broken)
    fine = worker.call(lambda collection, embedder: collection)
    worker.start()
    try:
        with pytest.raises(RuntimeError, match="went away"):
            failing.result(timeout=10)
        assert fine.result(timeout=10) == "collection"
    finally:
        worker.stop()


def test_stop_closes_the_store(calls):
    worker = _worker()
    worker.start()
    store = worker.store
    worker.stop()
    assert store.closed
