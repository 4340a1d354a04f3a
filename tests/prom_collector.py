"""An OpenWEC-shaped collector for the Prometheus stats tests: takes batches, has no /health and no
/stats/throughput, and counts received events only in Prometheus text on /metrics, with labels,
`_total` naming, and (on request) a restart that resets its counters after a scrape."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from threaded_app import ThreadedApp

_EVENT = re.compile(rb"<EventID>")
METRIC = "openwec_input_events_total"


@dataclass
class PromCollector(ThreadedApp):
    """aiohttp on 127.0.0.1 in a thread; events alternate between two subscriptions' label sets."""

    reset_at: int = 0  # after a scrape showing a series at this value or more, restart: every series vanishes
    port: int = 0
    received: int = 0  # every event ever taken, whatever the counters say
    series: Counter[str] = field(default_factory=Counter)  # subscription -> the counter's value now
    scrapes: int = 0
    resets: int = 0

    def __post_init__(self) -> None:
        self._init_server()
        self._lock = threading.Lock()
        self._requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.read()
        n = len(_EVENT.findall(body))
        with self._lock:
            self._requests += 1
            sub = "a" if self._requests % 2 else "b"
            self.series[sub] += n
            self.received += n
        return web.Response(text="OK")

    def text(self) -> str:
        """What OpenWEC's exporter writes: HELP and TYPE under the full `_total` name, one line per label set."""
        lines = [
            "# HELP openwec_input_events_total The total number of events received by openwec",
            "# TYPE openwec_input_events_total counter",
        ]
        for sub, value in sorted(self.series.items()):
            lines.append(f'{METRIC}{{subscription_uuid="{sub}",subscription_name="sub-{sub}"}} {value}')
        lines += [
            "# TYPE openwec_input_messages_total counter",
            f'openwec_input_messages_total{{action="events"}} {self._requests}',
            "# TYPE openwec_machines gauge",
            'openwec_machines{state="alive"} 2',
            "",
        ]
        return "\n".join(lines)

    async def _metrics(self, request: web.Request) -> web.Response:
        with self._lock:
            self.scrapes += 1
            body = self.text()
            if self.reset_at and not self.resets and any(v >= self.reset_at for v in self.series.values()):
                self.series.clear()  # a restart right after this scrape: series come back with their next event
                self.resets += 1
        return web.Response(text=body, content_type="text/plain")

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response([{"event_type": "EventID 4624", "total_events": self.received}])

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/wsman/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        # JSON where Prometheus text is expected, for the test of a wrong WEF_STATS_ENDPOINT.
        app.router.add_get("/api/stats", self._json)
