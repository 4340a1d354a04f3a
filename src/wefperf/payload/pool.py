"""Pre-serialized batch bodies: built before the clock starts, patched per batch in C.

A batch body is a few variants' byte parts joined by the batch number
(`token.join(parts)`), so each event carries a unique marker without any
per-event Python work in the hot loop and memory does not grow with the run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable, Sequence

from .marker import BATCH_PLACEHOLDER, batch_token
from .templates import field_value, template_for, weighted_ids
from .wire import BATCH_HEAD, BATCH_TAIL, EVENT_SEPARATOR, event_xml


@dataclass(frozen=True)
class Variant:
    """One pre-built batch shape: its parts, size and events per EventID."""

    parts: tuple[bytes, ...]
    events: int
    type_counts: dict[int, int]
    framed_parts: tuple[bytes, ...] = ()
    event_ids: tuple[int, ...] = ()  # the EventID at each index of the batch
    request_length: int = 0  # head and body, set by `PayloadPool.frame`

    @property
    def body_length(self) -> int:
        return sum(map(len, self.parts)) + (len(self.parts) - 1) * len(BATCH_PLACEHOLDER)


@dataclass
class PayloadPool:
    run_id: str
    batch_size: int
    variants: list[Variant]
    # Count mode: the last batch may be short; it has a variant of its own.
    total_batches: int | None = None
    last: Variant | None = None
    build_seconds: float = 0.0
    seed: int | None = None  # the same seed and settings build the same batches again

    def variant(self, batch: int) -> Variant:
        if self.last is not None and batch == self.total_batches - 1:  # type: ignore[operator]
            return self.last
        variants = self.variants
        return variants[batch % len(variants)] if len(variants) > 1 else variants[0]

    def events_in(self, batch: int) -> int:
        return self.variant(batch).events

    def body(self, batch: int) -> bytes:
        return batch_token(batch).join(self.variant(batch).parts)

    def frame(self, make_head: Callable[[int], bytes]) -> None:
        """Prefix every variant with a request head, for senders that write raw bytes."""
        def framed(v: Variant) -> Variant:
            parts = list(v.parts)
            parts[0] = make_head(v.body_length) + parts[0]
            length = sum(map(len, parts)) + (len(parts) - 1) * len(BATCH_PLACEHOLDER)
            return replace(v, framed_parts=tuple(parts), request_length=length)

        self.variants = [framed(v) for v in self.variants]
        if self.last is not None:
            self.last = framed(self.last)

    def request_length(self, batch: int) -> int:
        """Bytes of `request(batch)`, without building it."""
        return self.variant(batch).request_length

    def request(self, batch: int) -> bytes:
        """Head and body in one buffer; needs `frame` first."""
        return batch_token(batch).join(self.variant(batch).framed_parts)

    def event_ids(self) -> list[int]:
        """Every EventID this run's batches carry."""
        every = set(self.last.type_counts) if self.last is not None else set()
        for v in self.variants:
            every.update(v.type_counts)
        return sorted(every)

    def expected_types(self, sent_batches: int, failed: Sequence[tuple[int, int]] = ()) -> Counter[int]:
        """Events per EventID that the acknowledged batches carried; `failed` is inclusive batch ranges.

        By EventID, not by the server's label: collectors label the same event differently
        (`Provider:4624`, or `EventID 4624` when they read no provider), see docs/contract.md.
        Arithmetic over ranges, so a million failed batches cost no more than one.
        """
        # Batch b is variant b % n, except a short last batch in count mode.
        plain = sent_batches
        last_sent = self.last is not None and self.total_batches is not None and sent_batches >= self.total_batches
        if last_sent:
            plain = self.total_batches - 1  # type: ignore[operator]
        n = len(self.variants)
        per_variant = [plain // n + (1 if v < plain % n else 0) for v in range(n)]
        for first, last in failed:
            for v in range(n):
                per_variant[v] -= _count_congruent(first, min(last, plain - 1), v, n)
        last_failed = last_sent and any(first <= plain <= last for first, last in failed)
        total: Counter[int] = Counter()
        for variant, count in zip(self.variants, per_variant):
            for key, value in variant.type_counts.items():
                total[key] += value * count
        if last_sent and not last_failed:
            total.update(self.last.type_counts)  # type: ignore[union-attr]
        return +total


    def segment_types(
        self, sent: int, segment: tuple[int, int], failed: Sequence[tuple[int, int]] = ()
    ) -> Counter[int]:
        """Events per EventID of a segment's acknowledged batches: its first `sent` batches i, i+N, ...

        `failed` holds whole-plan batch numbers (inclusive ranges); only the segment's own count.
        """
        index, count = segment
        if count == 1:
            return self.expected_types(sent, failed)
        skipped = {b for first, last in failed for b in range(first + (index - first) % count, last + 1, count)}
        per_variant: Counter[int] = Counter()
        for batch in range(index, index + sent * count, count):
            if batch not in skipped:
                per_variant[id(self.variant(batch))] += 1
        shapes = {id(v): v for v in self.variants}
        if self.last is not None:
            shapes[id(self.last)] = self.last
        total: Counter[int] = Counter()
        for key, n in per_variant.items():
            for event_id, value in shapes[key].type_counts.items():
                total[event_id] += value * n
        return +total


def _count_congruent(first: int, last: int, v: int, n: int) -> int:
    """How many k in first..last have k % n == v."""
    if last < first:
        return 0
    return (last - v) // n - (first - 1 - v) // n


def _build_variant(
    rng: random.Random, run_id: str, events: int, event_type: str, seed_record: int, now: datetime
) -> Variant:
    ids = [int(event_type)] * events if event_type else weighted_ids(rng, events)
    chunks = [BATCH_HEAD]
    counts: Counter[int] = Counter()
    for index, event_id in enumerate(ids):
        template = template_for(event_id)
        values = {name: field_value(name, rng) for name in template.fields}
        chunks.append(
            event_xml(
                template, values, run_id=run_id, index=index, record_id=seed_record + index,
                computer=f"WS-{rng.randint(1, 9999):04d}.corp.example.com", time_created=now,
            )
            + EVENT_SEPARATOR
        )
        counts[event_id] += 1
    chunks.append(BATCH_TAIL)
    parts = tuple(b"".join(chunks).split(BATCH_PLACEHOLDER))
    return Variant(parts=parts, events=events, type_counts=dict(counts), event_ids=tuple(ids))


def build_pool(
    *,
    run_id: str,
    batch_size: int,
    event_type: str = "",
    total_events: int | None = None,
    variants: int = 8,
    seed: int | None = None,
) -> PayloadPool:
    """All batch shapes a run will send. `total_events` set means count mode."""
    import time

    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    # A fixed event type gives identical batches apart from the marker: one variant is enough.
    n = 1 if event_type else max(1, variants)
    if total_events is not None:
        full_batches = total_events // batch_size
        n = max(1, min(n, full_batches or 1))
    built = [_build_variant(rng, run_id, batch_size, event_type, 1 + i * batch_size, now) for i in range(n)]
    pool = PayloadPool(run_id=run_id, batch_size=batch_size, variants=built, seed=seed)
    if total_events is not None:
        remainder = total_events % batch_size
        pool.total_batches = total_events // batch_size + (1 if remainder else 0)
        if remainder:
            pool.last = _build_variant(rng, run_id, remainder, event_type, 1, now)
    pool.build_seconds = time.perf_counter() - started
    return pool
