"""Events deliveries of simulated hosts in WS-Management form, from pieces made before the clock.

The events are the ones of `payload/hosts.py` (same markers, record ids and host names, so the
S3 accounting is the same), each wrapped in `<w:Event><![CDATA[...]]></w:Event>` and turned into
UTF-16LE once, before the load. A delivery then patches its per-event values as UTF-16 code
units with slice assignments and C-level `map`s, and adds one header per envelope (MessageID,
bookmark): constant Python work per request, none per event.

A delivery whose envelope would exceed the subscription's MaxEnvelopeSize is cut into several
envelopes at event boundaries; sizes are bounded before the load (`_Sizes`), so the cut is a
bisect per envelope.

Each event's text in its CDATA ends at `</Event>`, as Windows' does (the batch body's newline between
events stays out). When the subscription's ContentFormat is RenderedText, each event also carries the
RenderingInfo block Windows appends after EventData (payload/rendering.py); those pieces are built
once, before the load, the first time a subscription asks for them (`prepare`).
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate, repeat

from ..payload.hosts import HostPayload
from ..payload.marker import batch_token
from ..payload.rendering import RENDERED_TEXT, event_data, rendering_info
from ..payload.wire import BATCH_HEAD, BATCH_TAIL, EVENT_SEPARATOR
from . import envelope, ns

_U16 = "utf-16-le"
_RECORD_BOUND = 2 * 20  # an EventRecordID of up to 20 digits, in UTF-16
_HEADER_BOUND = 8_192  # the header of one envelope, at most (names and URLs included), in bytes
_EVENT_END = b"</Event>"
RAW = "Raw"


def u16(text: str) -> bytes:
    return text.encode(_U16)


@dataclass(frozen=True)
class WsmanVariant:
    """One pre-built HostVariant, in UTF-16LE, each event split around its three patched values."""

    starts: tuple[bytes, ...]  # `<w:Event ...><![CDATA[` + the event up to its record id
    after_record: tuple[bytes, ...]
    after_computer: tuple[bytes, ...]
    ends: tuple[bytes, ...]  # marker index to `</Event>` + `]]></w:Event>`
    bound: tuple[int, ...]  # cumulative size bound of the first k events (k = 0..max_items)


@dataclass
class Envelopes:
    """A delivery's envelopes, joined, with where each starts and ends, and their MessageIDs."""

    data: bytes
    cuts: list[tuple[int, int]]
    message_ids: list[str]
    records: list[int]  # the bookmark (last RecordId) each envelope carries


class WsmanPayload:
    """Builds the Events envelopes of every host from a HostPayload's pre-built events."""

    def __init__(self, hosts: HostPayload, *, channel: str = "Security") -> None:
        self.hosts = hosts
        self.channel = channel
        longest = max((len(n) for n in hosts.names), default=0)
        self.names = [u16(n.decode()) for n in hosts.names]
        self._name_bound = 2 * longest
        self.variants = [self._variant(i) for i in range(len(hosts.variants))]
        self._rendered: list[WsmanVariant] | None = None

    def prepare(self, content_format: str) -> None:
        """Build the pieces a subscription's ContentFormat needs (once): call it before the clock."""
        self._variants(content_format)

    def _variants(self, content_format: str) -> list[WsmanVariant]:
        if content_format != RENDERED_TEXT:
            return self.variants
        if self._rendered is None:
            self._rendered = [self._rendered_variant(i) for i in range(len(self.hosts.variants))]
        return self._rendered

    def _tails(self, index: int) -> tuple[list[bytes], list[bytes]]:
        """Each event's text up to its record id, and from its marker's index to its `</Event>`."""
        v = self.hosts.variants[index]
        tails, nexts = [], [v.lead[len(BATCH_HEAD):]]
        for join in v.joins:
            cut = join.index(_EVENT_END) + len(_EVENT_END)
            tails.append(join[:cut])
            nexts.append(join[cut + len(EVENT_SEPARATOR):])
        tails.append(v.ends[self.hosts.max_items - 1][: -len(EVENT_SEPARATOR + BATCH_TAIL)])
        return nexts, tails

    def _variant(self, index: int) -> WsmanVariant:
        """A HostVariant's events in UTF-16, each in its `<w:Event>` CDATA (Raw)."""
        v = self.hosts.variants[index]
        nexts, tails = self._tails(index)
        open_ = envelope.EVENT_OPEN
        starts = tuple(u16(open_ + s.decode()) for s in nexts)
        after_record = tuple(u16(p.decode()) for p in v.after_record)
        after_computer = tuple(u16(p.decode()) for p in v.after_computer)
        return self._with_ends(starts, after_record, after_computer, tails)

    def _rendered_variant(self, index: int) -> WsmanVariant:
        """The Raw variant's pieces (shared, not copied), each event's end with its RenderingInfo
        between EventData and `</Event>`, from the event's own values."""
        v, raw = self.hosts.variants[index], self.variants[index]
        _, tails = self._tails(index)
        rendered = [
            t[: -len(_EVENT_END)] + rendering_info(eid, event_data(after.decode())).encode() + _EVENT_END
            for t, eid, after in zip(tails, v.event_ids, v.after_computer, strict=True)
        ]
        return self._with_ends(raw.starts, raw.after_record, raw.after_computer, rendered)

    def _with_ends(self, starts: tuple[bytes, ...], after_record: tuple[bytes, ...],
                   after_computer: tuple[bytes, ...], tails: list[bytes]) -> WsmanVariant:
        ends = tuple(u16(t.decode() + envelope.EVENT_CLOSE) for t in tails)
        token = 2 * len(batch_token(0))
        sizes = [
            len(starts[i]) + len(after_record[i]) + len(after_computer[i]) + len(ends[i]) + _RECORD_BOUND
            + self._name_bound + token
            for i in range(self.hosts.max_items)
        ]
        return WsmanVariant(starts, after_record, after_computer, ends, tuple(accumulate(sizes, initial=0)))

    def envelopes(
        self, batch: int, events: int, host: int, first_record: int, *, to: str, machine: str,
        session: str, reference: str, max_envelope: int, content_format: str = RAW,
    ) -> Envelopes:
        """`events` events of `host` from `first_record`, in as many envelopes as MaxEnvelopeSize needs,
        each event as the subscription's ContentFormat asks (RenderedText: with its RenderingInfo)."""
        variants = self._variants(content_format)
        v = variants[batch % len(variants)]
        k = events
        parts: list[bytes] = [b""] * (7 * k)
        parts[0::7] = v.starts[:k]
        parts[1::7] = map(str.encode, map(str, range(first_record, first_record + k)), repeat(_U16, k))
        parts[2::7] = v.after_record[:k]
        parts[3::7] = [self.names[host]] * k
        parts[4::7] = v.after_computer[:k]
        parts[5::7] = [u16(batch_token(batch).decode())] * k
        parts[6::7] = v.ends[:k]
        return self._cut(v, parts, k, first_record, to=to, machine=machine, session=session,
                         reference=reference, max_envelope=max_envelope)

    def _cut(
        self, v: WsmanVariant, parts: list[bytes], k: int, first_record: int, *, to: str, machine: str,
        session: str, reference: str, max_envelope: int,
    ) -> Envelopes:
        budget = max_envelope - _HEADER_BOUND
        if v.bound[1] > budget:
            raise ValueError(f"one event needs more than MaxEnvelopeSize {max_envelope} bytes")
        out: list[bytes] = []
        cuts: list[tuple[int, int]] = []
        mids: list[str] = []
        records: list[int] = []
        a, offset = 0, 0
        while a < k:
            b = min(k, bisect_right(v.bound, v.bound[a] + budget, a) - 1)
            mid = f"uuid:{str(uuid.uuid4()).upper()}"
            last = first_record + b - 1
            header = envelope.delivery_header(
                to=to, action=ns.ACTION_EVENTS, machine=machine, mid=mid, session=session, reference=reference,
                bookmark=envelope.bookmark_xml(self.channel, last),
            )
            head, tail = envelope.split_envelope(header)
            body = b"".join([ns.BOM, u16(head), *parts[7 * a : 7 * b], u16(tail)])
            out.append(body)
            cuts.append((offset, offset + len(body)))
            offset += len(body)
            mids.append(mid)
            records.append(last)
            a = b
        return Envelopes(b"".join(out), cuts, mids, records)
