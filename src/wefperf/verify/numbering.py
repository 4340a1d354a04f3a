"""Which events a run sent, numbered densely, and each one's event type.

A marker says `RUN:BATCH:INDEX`. Batches hold `width` events at most (the batch size, or a
simulated host's max_items), but a delivery may hold fewer and a scale-out run may leave
batch numbers unsent, so `BATCH × width + INDEX` has holes. The accounting counts copies by
a dense number instead: the events sent before this batch (a prefix sum of batch sizes) plus
the index. Memory then follows the events sent, one byte each, never the numbering.

The type of every dense number (one byte, a code into `type_ids`) comes from the payload the
run was built from, so a row found under another type's `event_type=` partition is known to
be misplaced.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..payload.hosts import HostPayload
from ..payload.pool import PayloadPool


@dataclass
class Numbering:
    """Dense sequence numbers 0..span-1 for the events a run sent; see the module docstring."""

    width: int  # a marker's index is below this: the batch size, or max_items
    span: int  # events sent
    # First dense number of each batch, one entry more than there are batches; None: batch b starts
    # at b × width (every batch full, except a short last one in count mode).
    offsets: array[int] | None = field(default=None, repr=False)
    type_ids: list[int] = field(default_factory=list)  # code k + 1 stands for type_ids[k]
    types: bytes | None = field(default=None, repr=False)  # one code per dense number; None: not known
    # Failed batches whose first events were acknowledged all the same (WS-Man: envelopes Acked
    # before a later one failed): batch -> events Acked. Those events are expected in S3.
    acked_prefix: dict[int, int] = field(default_factory=dict)

    @classmethod
    def contiguous(cls, width: int, span: int) -> Numbering:
        """Batches 0.. of `width` events, `span` events in all; the types unknown."""
        return cls(width=width, span=span)

    @classmethod
    def of_pool(cls, pool: PayloadPool, sent: int | Sequence[bool]) -> Numbering:
        """A batch run: its first `sent` batches, or (scale-out) the batch numbers flagged as sent."""
        type_ids = pool.event_ids()
        code = {e: i + 1 for i, e in enumerate(type_ids)}
        flags: Iterable[bool] = itertools.repeat(True, sent) if isinstance(sent, int) else sent
        patterns: dict[int, bytes] = {}
        chunks: list[bytes] = []
        sizes: array[int] = array("q")
        holes = False
        for batch, was_sent in enumerate(flags):
            if not was_sent:
                sizes.append(0)
                holes = True
                continue
            if pool.total_batches is not None and batch >= pool.total_batches:
                break
            variant = pool.variant(batch)
            pattern = patterns.get(id(variant))
            if pattern is None:
                pattern = patterns[id(variant)] = bytes(code[e] for e in variant.event_ids)
            chunks.append(pattern)
            sizes.append(len(pattern))
        types = b"".join(chunks)
        offsets = _prefix_sums(sizes) if holes else None
        return cls(width=pool.batch_size, span=len(types), offsets=offsets, type_ids=type_ids, types=types)

    @classmethod
    def of_hosts(cls, payload: HostPayload, sizes: Sequence[int], acked_prefix: Mapping[int, int] | None = None,
                 ) -> Numbering:
        """Simulated hosts: delivery b held `sizes[b]` events (0 for a number no process sent);
        `acked_prefix`: deliveries that failed after their first events were Acked."""
        type_ids = sorted({e for v in payload.variants for e in v.event_ids})
        code = {e: i + 1 for i, e in enumerate(type_ids)}
        patterns = [bytes(code[e] for e in v.event_ids) for v in payload.variants]
        n = len(patterns)
        types = b"".join(patterns[b % n][:k] for b, k in enumerate(sizes) if k)
        return cls(width=payload.max_items, span=len(types), offsets=_prefix_sums(sizes), type_ids=type_ids,
                   types=types, acked_prefix=dict(acked_prefix or {}))

    # -- markers to dense numbers --------------------------------------------------------------

    def dense(self, batch: pa.Array, index: pa.Array) -> pa.Array:
        """The dense number of each marker (int64), null where the run never sent that event."""
        if self.offsets is None:
            seq = pc.add(pc.multiply(batch, self.width), index)
            ok = pc.and_(pc.less(index, self.width), pc.less(seq, self.span))
            return pc.if_else(ok, seq, pa.scalar(None, pa.int64()))
        batches = len(self.offsets) - 1
        known = pc.less(batch, batches)
        safe = pc.if_else(known, batch, 0)  # `take` needs indexes in range; unknown ones are nulled below
        offsets = pa.array(self.offsets, pa.int64())
        start = pc.take(offsets, safe)
        size = pc.subtract(pc.take(offsets, pc.add(safe, 1)), start)
        ok = pc.and_(known, pc.less(index, size))
        return pc.if_else(ok, pc.add(start, index), pa.scalar(None, pa.int64()))

    def sent_types(self) -> list[int]:
        """The event types the sent events carried (a short run may not reach every type of its payload)."""
        if self.types is None:
            return list(self.type_ids)
        return [e for i, e in enumerate(self.type_ids) if self.types.find(bytes([i + 1])) >= 0]

    def code_of(self, event_type: str) -> int:
        """The type code of a partition's event type; 0 when the run sent no such type."""
        try:
            return self.type_ids.index(int(event_type)) + 1
        except ValueError:
            return 0

    # -- dense numbers back to what the markers say, for reports ----------------------------------

    def marker_seq(self, dense: int) -> int:
        """`BATCH × width + INDEX` of a dense number: the numbering the reports have always used."""
        if self.offsets is None:
            return dense
        batch = bisect.bisect_right(self.offsets, dense) - 1  # the last batch starting at or before it: not empty
        return batch * self.width + dense - self.offsets[batch]

    def batch_range(self, first: int, last: int) -> tuple[int, int]:
        """Dense numbers [lo, hi) of batches first..last (inclusive), clipped to what was sent."""
        if self.offsets is None:
            return min(first * self.width, self.span), min((last + 1) * self.width, self.span)
        batches = len(self.offsets) - 1
        first, last = min(max(first, 0), batches), min(last + 1, batches)
        return self.offsets[first], self.offsets[max(first, last)]


def _prefix_sums(sizes: Iterable[int]) -> array[int]:
    return array("q", itertools.accumulate(sizes, initial=0))
