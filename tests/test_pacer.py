"""The pacer (load/pacer.py): one timer releases every waiter due within its resolution, in order.

The release logic runs on a fake clock: the tests call `fire()` themselves at chosen instants,
so nothing depends on how fast the machine is. One test lets the real loop's timer fire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fake_collector import FakeCollector
from wefperf.load.engine import LoadEngine
from wefperf.load.fast_sender import FastChannel, FastSenders
from wefperf.load.pacer import RESOLUTION_S, Pacer
from wefperf.load.scheduler import Schedule
from wefperf.payload import PayloadPool, build_pool


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_waiters_due_within_the_resolution_are_released_together_in_due_order() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, resolution_s=0.001)
    late = pacer.wait(100.0104)
    first = pacer.wait(100.0100)
    second = pacer.wait(100.0105)  # 0.5 ms after the first: within one timer tick of it
    beyond = pacer.wait(100.0112)  # 1.2 ms after the first: the next tick
    waiters = [late, first, second, beyond]
    assert all(w is not None for w in waiters)
    order: list[str] = []
    for name, w in zip(("late", "first", "second", "beyond"), waiters):
        assert w is not None
        w.add_done_callback(lambda _, name=name: order.append(name))
    clock.now = 100.0100  # the timer fires at the first due time
    assert pacer.fire() == 3
    assert [w.done() for w in waiters] == [True, True, True, False]
    await asyncio.sleep(0)  # done callbacks run on the loop
    assert order == ["first", "late", "second"]  # due order, not arrival order
    assert first is not None and first.result() is True
    clock.now = 100.0112
    assert pacer.fire() == 1
    assert beyond is not None and beyond.result() is True
    assert pacer.waiting == 0
    pacer.stop()


async def test_a_timer_that_fires_early_releases_nothing_that_is_not_due_and_is_armed_again() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, resolution_s=0.001)
    w = pacer.wait(100.050)
    assert w is not None
    clock.now = 100.040  # 10 ms early: nothing is due within the resolution
    assert pacer.fire() == 0
    assert not w.done()
    assert pacer._timer is not None  # armed again for the waiter
    clock.now = 100.0495  # half a tick early: due within the resolution, released now
    assert pacer.fire() == 1
    assert w.result() is True
    assert pacer._timer is None  # nobody left to wake
    pacer.stop()


async def test_a_due_time_within_the_resolution_needs_no_wait() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, resolution_s=0.001)
    assert pacer.wait(99.0) is None  # in the past
    assert pacer.wait(100.0009) is None  # less than a tick ahead
    assert pacer.waiting == 0


async def test_stop_releases_every_waiter_with_false_and_later_waits_too() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    waiters = [pacer.wait(100.0 + k) for k in (1, 2, 3)]
    pacer.stop()
    assert [w.result() if w is not None else None for w in waiters] == [False, False, False]
    later = pacer.wait(200.0)
    assert later is not None and later.result() is False
    assert pacer.waiting == 0


async def test_a_cancelled_waiter_is_dropped_and_the_rest_still_released() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, resolution_s=0.001)
    gone, kept = pacer.wait(100.010), pacer.wait(100.010)
    assert gone is not None and kept is not None
    gone.cancel()
    clock.now = 100.010
    assert pacer.fire() == 1
    assert kept.result() is True
    pacer.stop()


async def test_an_earlier_waiter_rearms_the_one_timer() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    pacer.wait(100.5)
    assert pacer._timer_at == 100.5
    pacer.wait(100.2)
    assert pacer._timer_at == 100.2  # the one timer now fires for the earlier waiter
    pacer.wait(100.3)
    assert pacer._timer_at == 100.2
    pacer.stop()


async def test_on_the_real_loop_the_timer_wakes_waiters_near_their_time_without_spinning() -> None:
    """Ten waiters 30-60 ms ahead, on the real clock: one timer firing per distinct due tick,
    nobody released more than a tick early. Lateness is bounded generously (a busy machine
    may keep the loop off the CPU), since it is not the property tested."""
    pacer = Pacer(time.perf_counter)
    now = time.perf_counter()
    whens = [now + 0.030 + 0.003 * k for k in range(10)]
    waiters = [pacer.wait(w) for w in whens]
    released: list[float] = []
    for w in waiters:
        assert w is not None
        w.add_done_callback(lambda _: released.append(time.perf_counter()))
    async with asyncio.timeout(10):
        assert await asyncio.gather(*waiters) == [True] * 10  # type: ignore[arg-type]
    assert released == sorted(released)
    assert all(at >= when - RESOLUTION_S for at, when in zip(released, whens))  # never more than a tick early
    # One firing per due time, and perhaps one more when libuv's whole-ms clock fired it early: not a
    # wake-up per loop turn.
    assert pacer.wakeups <= 20


class _StallingSenders:
    """The fast sender to a real collector; the `stall_at`-th send holds the event loop for `stall_s`
    (as a long callback or a process off the CPU would), so the batches due meanwhile go late."""

    name = "fast"

    def __init__(self, url: str, pool: PayloadPool, stall_at: int, stall_s: float) -> None:
        self.inner = FastSenders(url, pool, 5.0)
        self.stall_at, self.stall_s, self.sends = stall_at, stall_s, 0

    async def open(self) -> None:
        await self.inner.open()

    def channel(self) -> _StallingChannel:
        return _StallingChannel(self, self.inner.channel())

    async def close(self) -> None:
        await self.inner.close()


class _StallingChannel:
    def __init__(self, owner: _StallingSenders, inner: FastChannel) -> None:
        self.owner, self.inner = owner, inner

    chains = False

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def connect(self) -> None:
        await self.inner.connect()

    async def send(self, batch: int, after: Callable[[int], int | None] | None = None) -> int:
        self.owner.sends += 1
        if self.owner.sends == self.owner.stall_at:
            asyncio.get_running_loop().call_soon(time.sleep, self.owner.stall_s)
        return await self.inner.send(batch)


async def test_a_paced_run_sends_every_batch_once_and_lateness_shows_as_schedule_lag() -> None:
    """100 batches at 100 batches/s; the loop is held for 80 ms after the 20th send. The batches due
    meanwhile are released late, and their lateness (at least what the stall held back, less a
    tick) is the run's largest schedule lag; every batch still goes out once, marked."""
    collector = FakeCollector().start()
    try:
        batches, size, stall_s = 100, 5, 0.08
        pool = build_pool(run_id="pacertest", batch_size=size, event_type="4624", total_events=batches * size)
        senders = _StallingSenders(collector.url + "/wsman/events", pool, stall_at=20, stall_s=stall_s)
        schedule = Schedule.for_run(target_eps=100 * size, batch_size=size, total_events=batches * size,
                                    duration_s=0, timeout_s=60)
        engine = LoadEngine(pool=pool, senders=senders, schedule=schedule, concurrency=8, drain_timeout_s=2)
        summary = await asyncio.wait_for(engine.run(), 30)
    finally:
        collector.stop()
    assert (summary.batches_sent, summary.batches_ok, summary.batches_failed) == (batches, batches, 0)
    assert sum(collector.events.values()) == batches * size
    # The stall held the loop for 80 ms while a batch fell due every 10 ms: the first of them went
    # at least 80 ms - 10 ms (interval) - 1 ms (tick) late.
    assert summary.schedule_lag.max >= 1000 * (stall_s - 0.010 - RESOLUTION_S)
    assert summary.late_batches >= 1
