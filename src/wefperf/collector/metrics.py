"""`/metrics` on its own port (`--metrics-port`): the collector's counters in Prometheus text.

The real collector serves Prometheus metrics on a separate port when enabled (docs/contract.md),
but names no counter of received WEF events; this one is `wefperf_collector_events_received_total`,
labelled by the same event-type key as `/stats/throughput`, so a client can count from either.
The values are read from the collector's own counters at scrape time: nothing is added to the
per-request path. Rendered with `prometheus_client`, in a registry of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector as PromCollector

from .server import Collector

EVENTS_RECEIVED = "wefperf_collector_events_received"  # exported as ..._total
READY_PREFIX = "wefperf collector metrics on "


class CollectorMetrics(PromCollector):
    """Reads the collector's counters each time Prometheus (or wefperf) scrapes."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        c = self.collector
        received = CounterMetricFamily(EVENTS_RECEIVED, "WEF events received, by the collector's event-type key",
                                       labels=["event_type"])
        for key, n in sorted(c.stats.totals().items()):
            received.add_metric([key], n)
        yield received
        s = c.summary()
        yield CounterMetricFamily("wefperf_collector_requests", "events requests taken", value=s["requests"])
        yield CounterMetricFamily("wefperf_collector_rejected_requests", "requests answered 400 (not events)",
                                  value=s["rejected_requests"])
        yield CounterMetricFamily("wefperf_collector_uploaded_events", "events written to S3 in parquet files",
                                  value=s["uploaded_events"])
        yield CounterMetricFamily("wefperf_collector_dropped_events", "events given up on after S3 failures",
                                  value=s["dropped_events"])
        yield GaugeMetricFamily("wefperf_collector_buffered_events", "events waiting for their parquet flush",
                                value=s["buffered_events"])


def metrics_app(collector: Collector) -> web.Application:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CollectorMetrics(collector))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app
