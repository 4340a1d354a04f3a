"""Events-batch detection and parsing, with the counting rules of docs/contract.md.

Bytes-level regex and `bytes.find` over the whole body: no element tree, no per-event copy.
The request path only needs each event's span, provider and EventID (to count it and pick
its partition); everything else is extracted later, off the request path (sink.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

UNKNOWN = "unknown"
DETECT_CHARS = 2000
_MAX_EVENT_ID = 2**32 - 1

# An <Event> start tag, any namespace prefix; `<Events>`, `<EventID>`, `<EventData>` do not match.
_EVENT_START = re.compile(rb"<(?:[\w.-]+:)?Event[\s/>]")
_SYSTEM_CLOSE_NS = re.compile(rb"</[\w.-]+:System\s*>")
_PROVIDER = re.compile(rb"Provider\b[^>]*?\sName\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_EVENT_ID = re.compile(rb"EventID\b[^>]*>\s*(\d+)\s*<")


def is_events_batch(body: bytes) -> bool:
    """docs/contract.md: an events batch when the first 2,000 characters contain `<Events>` or `<Event>`."""
    head = body[: DETECT_CHARS * 4].decode("utf-8", "replace")[:DETECT_CHARS]
    return "<Events>" in head or "<Event>" in head


def type_key(provider: str, event_id: int) -> str:
    """`Provider:EventID`, or `EventID <n>` when the provider is empty."""
    return f"{provider}:{event_id}" if provider else f"EventID {event_id}"


@dataclass
class EventSlices:
    """The parsable events of one EventID in one body: spans into the body, and their providers."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)

    def xml_bytes(self) -> int:
        return sum(self.ends) - sum(self.starts)


@dataclass
class ParsedBatch:
    """What one request carried: per-type counts (incl. `unknown`) and the events to store."""

    type_counts: dict[str, int]
    by_event_id: dict[int, EventSlices]
    events: int
    unknown: int
    truncated: bool


def parse_batch(body: bytes) -> ParsedBatch:
    """Walk every <Event>; an event without a numeric EventID in a closed System block is `unknown`.

    An event that is never closed ends the walk (a malformed or truncated body): the events
    before it still count, like the real collector stopping at the first XML error.
    """
    pairs: Counter[tuple[bytes, bytes]] = Counter()
    by_id: dict[int, EventSlices] = {}
    unknown = 0
    truncated = False
    pos = 0
    find_start, find = _EVENT_START.search, body.find
    find_provider, find_id = _PROVIDER.search, _EVENT_ID.search
    while (m := find_start(body, pos)) is not None:
        start = m.start()
        if body[m.end() - 2 : m.end()] == b"/>":  # <Event/>: empty, nothing to parse
            unknown += 1
            pos = m.end()
            continue
        # bytes.find runs at memchr speed; `Event>` ends `</Event>` or `</ns:Event>`.
        close = find(b"Event>", m.end() - 1)
        while close != -1 and body[close - 1 : close] not in (b"/", b":"):
            close = find(b"Event>", close + 6)
        if close == -1:
            truncated = True
            break
        end = pos = close + 6
        system_end = find(b"</System>", start, end)
        if system_end == -1 and (ns := _SYSTEM_CLOSE_NS.search(body, start, end)) is not None:
            system_end = ns.start()
        id_match = find_id(body, start, system_end) if system_end != -1 else None
        if id_match is None or int(id_match.group(1)) > _MAX_EVENT_ID:
            unknown += 1
            continue
        prov = find_provider(body, start, system_end)
        provider = (prov.group(1) if prov.group(1) is not None else prov.group(2)) if prov else b""
        event_id = int(id_match.group(1))
        pairs[(provider, id_match.group(1))] += 1
        slices = by_id.get(event_id)
        if slices is None:
            slices = by_id[event_id] = EventSlices()
        slices.starts.append(start)
        slices.ends.append(end)
        slices.providers.append(provider.decode("utf-8", "replace"))
    counts: dict[str, int] = {}
    for (provider, raw_id), n in pairs.items():
        key = type_key(provider.decode("utf-8", "replace"), int(raw_id))
        counts[key] = counts.get(key, 0) + n
    if unknown:
        counts[UNKNOWN] = counts.get(UNKNOWN, 0) + unknown
    known = sum(len(s) for s in by_id.values())
    return ParsedBatch(counts, by_id, known + unknown, unknown, truncated)
