"""GET /metrics: Prometheus text (prometheus-client) of the requests and of the worker behind them.

Requests are counted by the access log's middleware as they end; the worker's own counters (queue, batches, model
passes, verdict checks) are read when /metrics is scraped, so the worker stays free of any metrics library.
Each app has its own registry: several apps in one process (the tests) do not share counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .worker import Worker

# Seconds: a health check answers in milliseconds, a search with the verdict in about a second alone, and in
# tens of seconds when the queue is long.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
disable_created_metrics()  # no *_created series beside every counter: they double the text for nothing we use


class ServerMetrics:
    def __init__(self, worker: Worker):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("imgsearch_http_requests", "HTTP requests answered, by route and status.",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("imgsearch_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its answer.", ("method", "route"),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_WorkerCollector(worker))

    def observe(self, method: str, route: str, status: int, seconds: float):
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _WorkerCollector:
    def __init__(self, worker: Worker):
        self.worker = worker

    def describe(self):
        return []  # families are made at collection time from the worker's counters

    def collect(self):
        worker, stats = self.worker, self.worker.stats
        yield GaugeMetricFamily("imgsearch_queue_waiting", "Requests waiting for the model.", value=worker.waiting)
        yield GaugeMetricFamily("imgsearch_queue_max", "The queue's bound (--max-queue).", value=worker.max_queue)
        yield CounterMetricFamily("imgsearch_queue_refused", "Requests refused (503) because the queue was full.",
                                  value=stats.refused)
        yield CounterMetricFamily("imgsearch_searches", "Searches run.", value=stats.searches)
        yield CounterMetricFamily("imgsearch_worker_calls", "Other jobs run by the worker (puts, deletes, lookups).",
                                  value=stats.calls)
        yield _batch_histogram(stats.batch_sizes)
        embedder = worker.embedder
        yield CounterMetricFamily("imgsearch_model_passes", "Model calls (each over a batch of pictures).",
                                  value=getattr(embedder, "model_passes", 0))
        yield CounterMetricFamily("imgsearch_model_images", "Pictures through the model (a query's views count).",
                                  value=getattr(embedder, "images_embedded", 0))
        yield CounterMetricFamily("imgsearch_verdict_checks", "Copy checks: a query and a stored image compared.",
                                  value=worker.verifier.checks)


def _batch_histogram(batch_sizes) -> HistogramMetricFamily:
    sizes = dict(batch_sizes)  # a copy: the worker thread may add to it meanwhile
    buckets = [(str(bound), sum(n for size, n in sizes.items() if size <= bound)) for bound in BATCH_BUCKETS]
    buckets.append(("+Inf", sum(sizes.values())))
    return HistogramMetricFamily("imgsearch_search_batch_size", "Searches sharing one search_images call.",
                                 buckets=buckets, sum_value=sum(size * n for size, n in sizes.items()))
