"""The server side of the picture: wait for /health, read /stats/throughput, sample it during the load."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import aiohttp

from .load import errors


class ServerUnavailable(RuntimeError):
    """The collector never answered /health: the run cannot start."""


@dataclass(frozen=True)
class StatsSnapshot:
    """One read of /stats/throughput: the sum of total_events and each type's total."""

    total: int
    per_type: dict[str, int] = field(default_factory=dict)

    def delta(self, earlier: "StatsSnapshot") -> dict[str, int]:
        keys = set(self.per_type) | set(earlier.per_type)
        out = {k: self.per_type.get(k, 0) - earlier.per_type.get(k, 0) for k in keys}
        return {k: v for k, v in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def event_id_of(label: str) -> int | None:
    """The EventID in a server's type label: `Provider:4624` and `EventID 4624` both give 4624.

    The real collector labels an event `Provider:ID` when it read a provider from the
    `<Provider>` element's text and `EventID ID` otherwise (docs/contract.md), so one EventID
    can appear under two labels; `unknown` and anything else give None.
    """
    if label.startswith("EventID "):
        tail = label[len("EventID "):]
    else:
        _, sep, tail = label.rpartition(":")
        if not sep:
            return None
    tail = tail.strip()
    return int(tail) if tail.isdigit() else None


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


async def wait_for_health(session: aiohttp.ClientSession, url: str, timeout_s: float) -> float:
    """Poll until /health answers 200; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout_s
    last = "no answer"
    while True:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                await resp.read()
                if resp.status == 200:
                    return time.monotonic() - started
                last = f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last = errors.classify(exc)
        if time.monotonic() >= deadline:
            raise ServerUnavailable(_unhealthy(url, last, timeout_s))
        await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0.01)))


# The seed's default endpoint: a compose service name, which resolves only inside compose.
COMPOSE_HOST = "wef-server"


def _unhealthy(url: str, last: str, timeout_s: float) -> str:
    host = urlsplit(url).hostname or url
    if last == errors.DNS:
        hint = (f"; {host} is the compose service name of the default WEF_ENDPOINT: outside compose,"
                " set WEF_ENDPOINT to your collector (e.g. http://127.0.0.1:5985)"
                if host == COMPOSE_HOST else "; check WEF_ENDPOINT")
        return f"WEF server did not become healthy: host {host} did not resolve (DNS) for {timeout_s:g} s{hint}"
    return (f"WEF server did not become healthy: GET {url} gave {last.replace('_', ' ')} for {timeout_s:g} s;"
            " check that the collector is running and that WEF_ENDPOINT points at it")


async def fetch_stats(session: aiohttp.ClientSession, url: str) -> StatsSnapshot:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        if resp.status != 200:
            raise ValueError(f"GET {url} answered HTTP {resp.status}")
        return parse_stats(await resp.json(content_type=None))


async def try_fetch_stats(session: aiohttp.ClientSession, url: str) -> tuple[StatsSnapshot | None, str | None]:
    """Stats are observation, not load: a failure is reported and the run goes on."""
    try:
        return await fetch_stats(session, url), None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return None, f"could not read {url}: {errors.describe(exc)}"


class StatsSampler:
    """Polls /stats/throughput every interval and hands each delta to `sink`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        interval_s: float,
        sink: Callable[[float, int], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.session, self.url, self.interval_s, self.sink, self.clock = session, url, interval_s, sink, clock
        self.samples = 0
        self.last: StatsSnapshot | None = None

    async def run(self, baseline: StatsSnapshot | None) -> None:
        self.last = baseline
        next_at = self.clock()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(next_at - self.clock(), 0))
            snap, _ = await try_fetch_stats(self.session, self.url)
            if snap is None:
                continue
            self.samples += 1
            if self.last is not None:
                self.sink(self.clock(), snap.total - self.last.total)
            self.last = snap
