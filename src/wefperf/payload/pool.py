"""Pre-serialized batch bodies: built before the clock starts, patched per batch in C.

A batch body is a few variants' byte parts joined by the batch number
(`token.join(parts)`), so each event carries a unique marker without any
per-event Python work in the hot loop and memory does not grow with the run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from .marker import BATCH_PLACEHOLDER, batch_token
from .templates import PROVIDER, field_value, template_for, weighted_ids
from .wire import BATCH_HEAD, BATCH_TAIL, event_xml


@dataclass(frozen=True)
class Variant:
    """One pre-built batch shape: its parts, size and event-type mix."""

    parts: tuple[bytes, ...]
    events: int
    type_counts: dict[str, int]
    framed_parts: tuple[bytes, ...] = ()

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
            return Variant(v.parts, v.events, v.type_counts, tuple(parts))

        self.variants = [framed(v) for v in self.variants]
        if self.last is not None:
            self.last = framed(self.last)

    def request(self, batch: int) -> bytes:
        """Head and body in one buffer; needs `frame` first."""
        return batch_token(batch).join(self.variant(batch).framed_parts)

    def expected_types(self, sent_batches: int, failed: Iterable[int] = ()) -> Counter[str]:
        """Events per server type key that the acknowledged batches carried."""
        total: Counter[str] = Counter()
        n = len(self.variants)
        plain = sent_batches
        if self.last is not None and self.total_batches is not None and sent_batches >= self.total_batches:
            plain = self.total_batches - 1
            total.update(self.last.type_counts)
        for v_index, variant in enumerate(self.variants):
            count = plain // n + (1 if v_index < plain % n else 0)
            for key, value in variant.type_counts.items():
                total[key] += value * count
        for batch in failed:
            if batch < sent_batches:
                total.subtract(self.variant(batch).type_counts)
        return +total


def _build_variant(
    rng: random.Random, run_id: str, events: int, event_type: str, seed_record: int, now: datetime
) -> Variant:
    ids = [int(event_type)] * events if event_type else weighted_ids(rng, events)
    chunks = [BATCH_HEAD]
    counts: Counter[str] = Counter()
    for index, event_id in enumerate(ids):
        template = template_for(event_id)
        values = {name: field_value(name, rng) for name in template.fields}
        chunks.append(
            event_xml(
                template, values, run_id=run_id, index=index, record_id=seed_record + index,
                computer=f"WS-{rng.randint(1, 9999):04d}.corp.example.com", time_created=now,
            )
        )
        counts[f"{PROVIDER}:{event_id}"] += 1
    chunks.append(BATCH_TAIL)
    parts = tuple(b"".join(chunks).split(BATCH_PLACEHOLDER))
    return Variant(parts=parts, events=events, type_counts=dict(counts))


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
    pool = PayloadPool(run_id=run_id, batch_size=batch_size, variants=built)
    if total_events is not None:
        remainder = total_events % batch_size
        pool.total_batches = total_events // batch_size + (1 if remainder else 0)
        if remainder:
            pool.last = _build_variant(rng, run_id, remainder, event_type, 1, now)
    pool.build_seconds = time.perf_counter() - started
    return pool
