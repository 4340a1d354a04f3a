"""The server side of the picture: wait for health, read the server's count, sample it during the load.

The count comes from `/stats/throughput` (JSON, per event type) or from one Prometheus counter
(`--stats-format prometheus`, e.g. OpenWEC's `openwec_input_events_total`: a total only).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol
from urllib.parse import urlsplit

import aiohttp

from ..load import errors
from ..model import event_id_of as event_id_of
from .prometheus import CounterTotal, LabelSet, MetricAbsent, MetricError, absent_message, read_counter
from .restarts import RestartWatch
from .tlsdiag import TlsDiagnosis, TlsSetup, diagnose


class ServerUnavailable(RuntimeError):
    """The collector never answered /health: the run cannot start."""


@dataclass(frozen=True)
class StatsSnapshot:
    """One read of /stats/throughput: the sum of total_events and each type's total."""

    total: int
    per_type: dict[str, int] = field(default_factory=dict)
    note: str | None = None  # something the report should say about this read

    def delta(self, earlier: "StatsSnapshot") -> dict[str, int]:
        keys = set(self.per_type) | set(earlier.per_type)
        out = {k: self.per_type.get(k, 0) - earlier.per_type.get(k, 0) for k in keys}
        return {k: v for k, v in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def parse_stats(payload: object) -> StatsSnapshot:
    """The contract's JSON array; anything else is reported, not guessed at."""
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of event-type rows")
    per_type: dict[str, int] = {}
    for row in payload:
        if not isinstance(row, dict) or "event_type" not in row or "total_events" not in row:
            raise ValueError("a row lacks event_type or total_events")
        per_type[str(row["event_type"])] = per_type.get(str(row["event_type"]), 0) + int(row["total_events"])
    return StatsSnapshot(sum(per_type.values()), per_type)


async def wait_for_health(
    session: aiohttp.ClientSession, url: str, timeout_s: float, setting: str = "WEF_ENDPOINT",
    tls: TlsSetup | None = None,
) -> float:
    """Poll until `url` answers 200; returns the seconds it took. `setting` is what the user should check.

    A TLS failure is named with the flag that fixes it (`tls`: what the client presents); one that
    waiting cannot change (a certificate check, a server's alert) ends the wait at once.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    last = "no answer"
    hint: TlsDiagnosis | None = None
    while True:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                await resp.read()
                if resp.status == 200:
                    return time.monotonic() - started
                last, hint = f"HTTP {resp.status}", None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last, hint = errors.classify(exc), diagnose(exc, url, tls or TlsSetup(), setting)
            if hint is not None and hint.definite:
                raise ServerUnavailable(
                    f"WEF server did not become healthy: GET {url} gave tls error: {hint.reason}; {hint.fix}"
                ) from None
        if time.monotonic() >= deadline:
            raise ServerUnavailable(_unhealthy(url, last, timeout_s, setting, hint))
        await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0.01)))


# The seed's default endpoint: a compose service name, which resolves only inside compose.
COMPOSE_HOST = "wef-server"


def _unhealthy(url: str, last: str, timeout_s: float, setting: str = "WEF_ENDPOINT",
               tls: TlsDiagnosis | None = None) -> str:
    host = urlsplit(url).hostname or url
    if tls is not None:
        return (f"WEF server did not become healthy: GET {url} gave {last.replace('_', ' ')} for {timeout_s:g} s:"
                f" {tls.reason}; {tls.fix}")
    if last == errors.DNS:
        hint = (f"; {host} is the compose service name of the default WEF_ENDPOINT: outside compose,"
                " set WEF_ENDPOINT to your collector (e.g. http://127.0.0.1:5985)"
                if host == COMPOSE_HOST and setting == "WEF_ENDPOINT" else f"; check {setting}")
        return f"WEF server did not become healthy: host {host} did not resolve (DNS) for {timeout_s:g} s{hint}"
    return (f"WEF server did not become healthy: GET {url} gave {last.replace('_', ' ')} for {timeout_s:g} s;"
            f" check that the collector is running and that {setting} points at it")


class StatsReader(Protocol):
    """Where the server's count comes from: `read` gives a snapshot or raises (network, format)."""

    url: str
    per_type: bool  # whether snapshots carry per-type counts

    @property
    def resets(self) -> int:
        """Reads so far in which the server's counters fell (a restart): summed across, not subtracted."""
        ...

    async def read(self, session: aiohttp.ClientSession) -> StatsSnapshot: ...


class JsonStats:
    """The contract's `/stats/throughput`: a total and a count per event type, monotonic across resets.

    A restarted collector counts from 0 again: when any type's total falls, every type restarted
    (one process counts them all), and what each had counted stays counted, as Prometheus'
    increase() does. Snapshots carry these summed counts, so `final - baseline` holds across it.
    """

    per_type = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.counter: CounterTotal[str] = CounterTotal(whole_resets=True)

    @property
    def resets(self) -> int:
        return self.counter.resets

    async def read(self, session: aiohttp.ClientSession) -> StatsSnapshot:
        async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                raise ValueError(f"GET {self.url} answered HTTP {resp.status}")
            raw = parse_stats(await resp.json(content_type=None))
        total = self.counter.update_series(raw.per_type)
        return StatsSnapshot(total, self.counter.values())


class PrometheusStats:
    """One Prometheus counter, summed over its label sets, monotonic across resets: a total only.

    A counter with labels appears only with its first event, so before it has been seen its
    absence counts as 0 (said in the snapshot's note); once seen, a later absence keeps the last
    values. Still absent when the load is over, it is an error that names the counters present.
    """

    per_type = False

    def __init__(self, url: str, metric: str) -> None:
        self.url, self.metric = url, metric
        self.counter: CounterTotal[LabelSet] = CounterTotal()
        self.seen = False
        self.reads = 0

    @property
    def resets(self) -> int:
        return self.counter.resets

    async def read(self, session: aiohttp.ClientSession) -> StatsSnapshot:
        async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                raise ValueError(f"GET {self.url} answered HTTP {resp.status}")
            text = await resp.text(errors="replace")
        reading = read_counter(text, self.metric, self.url)
        first = self.reads == 0
        self.reads += 1
        if reading.present:
            self.seen = True
            return StatsSnapshot(self.counter.update(reading))
        if self.seen:
            return StatsSnapshot(self.counter.total)
        if first:
            return StatsSnapshot(0, note=f"{self.metric} was not yet at {self.url} before the load;"
                                         " counted from 0 (a counter with labels appears with its first event)")
        raise MetricAbsent(absent_message(reading, self.url))


def stats_reader(stats_format: str, url: str, metric: str) -> StatsReader:
    """The reader PERF_TEST_STATS_FORMAT asks for."""
    return PrometheusStats(url, metric) if stats_format == "prometheus" else JsonStats(url)


async def fetch_stats(session: aiohttp.ClientSession, url: str) -> StatsSnapshot:
    return await JsonStats(url).read(session)


async def try_read(session: aiohttp.ClientSession, reader: StatsReader) -> tuple[StatsSnapshot | None, str | None]:
    """Stats are observation, not load: a failure is reported and the run goes on.

    MetricError is not caught: a metric of the wrong type, or a URL that serves no Prometheus
    text, will not mend during the run, so the caller stops before the load.
    """
    try:
        return await reader.read(session), None
    except MetricError:
        raise
    except MetricAbsent as exc:
        return None, str(exc)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return None, f"could not read {reader.url}: {errors.describe(exc)}"


async def try_fetch_stats(session: aiohttp.ClientSession, url: str) -> tuple[StatsSnapshot | None, str | None]:
    """`/stats/throughput` read once; a failure is a note, not an exception."""
    return await try_read(session, JsonStats(url))


class StatsSampler:
    """Reads the server's count every interval and hands each delta to `sink`.

    The reader sums across counter resets, so a delta is never negative. `watch`, when given,
    is told of every read, good or failed, with the events `acked` so far: a restart's outage.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        reader: StatsReader | str,
        interval_s: float,
        sink: Callable[[float, int], None],
        clock: Callable[[], float] = time.perf_counter,
        watch: RestartWatch | None = None,
        acked: Callable[[], int] = lambda: 0,
    ) -> None:
        self.reader: StatsReader = JsonStats(reader) if isinstance(reader, str) else reader
        self.session, self.interval_s, self.sink, self.clock = session, interval_s, sink, clock
        self.watch, self.acked = watch, acked
        self.samples = 0
        self.last: StatsSnapshot | None = None

    async def read_once(self) -> tuple[StatsSnapshot | None, str | None]:
        """One read (as `try_read`), told to the watch; MetricError goes on to the caller."""
        try:
            snap, note = await try_read(self.session, self.reader)
        except MetricError:
            if self.watch is not None:
                self.watch.read_failed(self.clock(), self.acked())
            raise
        if self.watch is not None:
            if snap is None:
                self.watch.read_failed(self.clock(), self.acked())
            else:
                self.watch.read_ok(self.clock(), snap.total, self.reader.resets, self.acked())
        return snap, note

    @property
    def url(self) -> str:
        return self.reader.url

    async def run(self, baseline: StatsSnapshot | None) -> None:
        self.last = baseline
        next_at = self.clock()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(next_at - self.clock(), 0))
            try:
                # A read that hangs (a collector stopping with the connection open) must not hold
                # the sampling up: a restart shows only in a read made while its counts are low.
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel that ends
                # the sampler when a read completes at that moment, and the load would never end.
                async with asyncio.timeout(max(2.0, 2 * self.interval_s)):
                    snap, _ = await self.read_once()
            except MetricError:
                continue  # the final read reports it
            except TimeoutError:
                if self.watch is not None:
                    self.watch.read_failed(self.clock(), self.acked())
                continue
            if snap is None:
                continue
            self.samples += 1
            if self.last is not None:
                self.sink(self.clock(), snap.total - self.last.total)
            self.last = snap
