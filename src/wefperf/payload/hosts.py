"""Deliveries of simulated Windows hosts, built from pieces made before the clock starts.

A delivery carries 1..max_items events of one host. Each pre-built event is split where
its three per-delivery values go: the host's EventRecordID, its `Computer` name and the
batch number of the marker (`RUNID:BATCH:INDEX`). The marker's index is the event's
position in the delivery, so it is baked into the pieces. A delivery of k events is then
one `bytes.join` over a list filled by slice assignments (C loops, no Python per event):

    [head, lead, rec0, p0, computer, q0, batch, join0, rec1, p1, computer, q1, batch, ..., end]

Every delivery gets the next global batch number, whichever host sends it, so markers stay
unique; an event's sequence number is `batch × max_items + index`. Deliveries hold fewer
than max_items events, so these numbers have holes: the S3 accounting numbers the events
densely from the delivery sizes (wefperf.verify.numbering).
"""

from __future__ import annotations

import random
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from .marker import BATCH_PLACEHOLDER, batch_token
from .templates import field_value, template_for, weighted_ids
from .wire import BATCH_HEAD, BATCH_TAIL, EVENT_SEPARATOR, event_xml, request_head

# Where the host's name and record id go in a pre-built event; replaced in every delivery.
COMPUTER_MARK = "@@WEFPERF-COMPUTER@@"
_RECORD_SENTINEL = 987_654_321_987_654_321
RECORD_MARK = str(_RECORD_SENTINEL).encode()
# Pre-built events: at least this many variants, while their events stay under a budget.
_MIN_VARIANTS, _EVENT_BUDGET = 64, 20_000
_LENGTH_MARK = 8_888_888_888_888  # stands in for Content-Length while the head is split
_RECORD_SPAN = (1_000, 5_000_000)  # where a host's EventRecordID sequence starts


def host_name(index: int, hosts: int) -> str:
    """`WKS-00042.corp.example.com`: fixed width within a run, so names sort as numbers do."""
    width = max(5, len(str(max(hosts - 1, 0))))
    return f"WKS-{index:0{width}d}.corp.example.com"


def host_seed(seed: int, index: int) -> int:
    """Each host's own random stream, derived from the run's payload seed (runs repeat)."""
    return (seed << 32) + index + 1


@dataclass(frozen=True)
class HostVariant:
    """`max_items` pre-built events, split around the per-delivery values."""

    lead: bytes  # the batch head and the first event up to its record id
    after_record: tuple[bytes, ...]  # from </EventRecordID> up to the Computer name
    after_computer: tuple[bytes, ...]  # from </Computer> up to the marker's batch number
    joins: tuple[bytes, ...]  # marker index to </Event> and the separator, then the next event up to its record id
    ends: tuple[bytes, ...]  # marker index to </Event> and the separator, then the batch tail
    event_ids: tuple[int, ...]
    cumulative: dict[int, array[int]]  # EventID -> how many of the first k events have it


@dataclass
class HostPayload:
    run_id: str
    seed: int
    hosts: int
    max_items: int
    variants: list[HostVariant]
    names: list[bytes]
    record_bases: list[int]
    build_seconds: float = 0.0
    _head: tuple[bytes, bytes] = (b"", b"")

    def frame(self, host_header: str, path: str) -> None:
        """The request head around its Content-Length, for raw HTTP/1.1 writes."""
        head = request_head(host_header, path, _LENGTH_MARK)
        before, after = head.split(str(_LENGTH_MARK).encode())
        self._head = (before, after)

    def variant_of(self, batch: int) -> int:
        return batch % len(self.variants)

    def request(self, batch: int, events: int, host: int, first_record: int) -> bytes:
        """Head and body of one delivery: `events` events of `host`, record ids from `first_record`."""
        v = self.variants[batch % len(self.variants)]
        k = events
        parts: list[bytes] = [b""] * (2 + 6 * k)
        parts[1] = v.lead
        parts[2::6] = map(b"%d".__mod__, range(first_record, first_record + k))
        parts[3::6] = v.after_record[:k]
        parts[4::6] = [self.names[host]] * k
        parts[5::6] = v.after_computer[:k]
        parts[6::6] = [batch_token(batch)] * k
        parts[7::6] = v.joins[: k - 1] + (v.ends[k - 1],)
        length = sum(map(len, parts))
        before, after = self._head
        parts[0] = before + b"%d" % length + after
        return b"".join(parts)

    def body(self, batch: int, events: int, host: int, first_record: int) -> bytes:
        """The body alone (tests, and anything that frames requests itself)."""
        data = self.request(batch, events, host, first_record)
        return data[data.index(b"\r\n\r\n") + 4 :] if self._head[0] else data

    # -- what the deliveries carried, for the server's counts and the S3 accounting ----------

    def shape(self, batch: int, events: int) -> int:
        """An index for (variant, events): a delivery's event types depend on nothing else."""
        return (batch % len(self.variants)) * (self.max_items + 1) + events

    def new_shape_counts(self) -> array[int]:
        return array("q", bytes(8 * len(self.variants) * (self.max_items + 1)))

    def expected_types(self, shapes: Sequence[int]) -> Counter[int]:
        """Events per EventID in the deliveries counted in `shapes` (see `shape`)."""
        total: Counter[int] = Counter()
        width = self.max_items + 1
        for index, count in enumerate(shapes):
            if count:
                variant, k = divmod(index, width)
                for event_id, cum in self.variants[variant].cumulative.items():
                    if cum[k]:
                        total[event_id] += cum[k] * count
        return +total


def _split(event: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """An event around its record id, Computer name and batch number, in that order."""
    a, rest = event.split(RECORD_MARK)
    b, rest = rest.split(COMPUTER_MARK.encode())
    c, d = rest.split(BATCH_PLACEHOLDER)
    return a, b, c, d


def _variant(rng: random.Random, run_id: str, max_items: int, event_type: str, now: datetime) -> HostVariant:
    ids = [int(event_type)] * max_items if event_type else weighted_ids(rng, max_items)
    pieces = []
    for index, event_id in enumerate(ids):
        template = template_for(event_id)
        values = {name: field_value(name, rng) for name in template.fields}
        xml = event_xml(template, values, run_id=run_id, index=index, record_id=_RECORD_SENTINEL,
                        computer=COMPUTER_MARK, time_created=now)
        pieces.append(_split(xml + EVENT_SEPARATOR))
    cumulative: dict[int, array[int]] = {}
    for event_id in set(ids):
        counts, n = array("q", [0]), 0
        for e in ids:
            n += e == event_id
            counts.append(n)
        cumulative[event_id] = counts
    return HostVariant(
        lead=BATCH_HEAD + pieces[0][0],
        after_record=tuple(p[1] for p in pieces),
        after_computer=tuple(p[2] for p in pieces),
        joins=tuple(pieces[i][3] + pieces[i + 1][0] for i in range(max_items - 1)),
        ends=tuple(p[3] + BATCH_TAIL for p in pieces),
        event_ids=tuple(ids),
        cumulative=cumulative,
    )


def build_host_payload(
    *, run_id: str, hosts: int, max_items: int, event_type: str = "", variants: int = 8, seed: int | None = None,
) -> HostPayload:
    """Every piece the hosts' deliveries are made of, and each host's name and first record id."""
    started = time.perf_counter()
    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    n = 1 if event_type else max(variants, min(_MIN_VARIANTS, _EVENT_BUDGET // max_items))
    built = [_variant(rng, run_id, max_items, event_type, now) for _ in range(n)]
    payload = HostPayload(
        run_id=run_id, seed=seed, hosts=hosts, max_items=max_items, variants=built,
        names=[host_name(h, hosts).encode() for h in range(hosts)],
        record_bases=[rng.randrange(*_RECORD_SPAN) for _ in range(hosts)],
    )
    payload.build_seconds = time.perf_counter() - started
    return payload
