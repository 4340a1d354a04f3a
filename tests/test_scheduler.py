"""The open model: intended times come from the rate alone."""

from __future__ import annotations

from wefperf.load.scheduler import Schedule, Scheduler


def test_intended_times_follow_the_rate_not_the_clock() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=10_000, batch_size=1000, total_events=5000, duration_s=0, timeout_s=60), 100.0)
    # however late the claims come, batch k is due at start + k * 0.1 s
    claims = [sched.claim(now) for now in (100.0, 100.5, 103.0, 103.0, 110.0)]
    assert [c[0] for c in claims] == [0, 1, 2, 3, 4]
    assert [round(c[1], 6) for c in claims] == [100.0, 100.1, 100.2, 100.3, 100.4]
    assert sched.claim(110.0) is None  # 5 batches: done


def test_duration_mode_stops_at_the_end_of_the_window() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=1000, batch_size=100, total_events=0, duration_s=2, timeout_s=60), 0.0)
    count = 0
    while sched.claim(0.0) is not None:
        count += 1
    assert count == 20  # 2 s x 10 batches/s


def test_timeout_ends_count_mode_and_is_reported() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=0, batch_size=10, total_events=10**9, duration_s=0, timeout_s=5), 0.0)
    assert sched.claim(1.0) is not None
    assert sched.claim(5.0) is None
    assert sched.timed_out


def test_unlimited_batches_are_due_now() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=0, batch_size=10, total_events=30, duration_s=0, timeout_s=5), 0.0)
    assert sched.claim(1.25) == (0, 1.25)


def test_stop_ends_claims() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=0, batch_size=10, total_events=30, duration_s=0, timeout_s=5), 0.0)
    sched.stop()
    assert sched.claim(0.1) is None


def test_duration_mode_sends_nothing_after_the_window_and_counts_what_was_due() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=1000, batch_size=100, total_events=0, duration_s=2, timeout_s=60), 0.0)
    for _ in range(5):
        assert sched.claim(0.0) is not None
    assert sched.claim(2.0) is None  # the window is over
    assert sched.due_not_claimed(2.5) == 15  # 20 were due in 2 s, 5 were taken


def test_due_batches_counts_the_plan_up_to_a_time_within_its_bounds() -> None:
    sched = Scheduler(Schedule.for_run(target_eps=1000, batch_size=100, total_events=0, duration_s=2,
                                       timeout_s=300), start=10.0)
    assert sched.due_batches(9.0) == 0  # before the start
    assert sched.due_batches(10.0) == 1  # batch 0 is due at the start
    assert sched.due_batches(10.55) == 6  # batches 0..5 (every 0.1 s)
    assert sched.due_batches(99.0) == 20  # the 2 s window holds 20 batches, no more
    counted = Scheduler(Schedule.for_run(target_eps=1000, batch_size=100, total_events=450, duration_s=0,
                                         timeout_s=300), start=0.0)
    assert counted.due_batches(99.0) == 5  # count mode: all 5 batches, the last one short
    unlimited = Scheduler(Schedule.for_run(target_eps=0, batch_size=100, total_events=450, duration_s=0,
                                           timeout_s=300), start=0.0)
    assert unlimited.due_batches(99.0) == 0


def test_a_stopped_run_owes_only_what_fell_due_before_the_stop_less_a_moment() -> None:
    """--abort-on-fail's check and batch 10 fall due on the same second: the stop released its sender."""
    sched = Scheduler(Schedule.for_run(target_eps=1000, batch_size=100, total_events=0, duration_s=30,
                                       timeout_s=300), start=0.0)
    for _ in range(11):
        sched.claim(0.0)  # batches 0..10, the last due at 1.0 s
    sched.unclaim()  # batch 10 was given back at the stop
    assert sched.due_batches(1.004) == 11
    assert sched.due_when_stopped(1.004, grace_s=0.01) == 10  # batch 10 was not late yet
    assert sched.due_when_stopped(1.5, grace_s=0.01) == 15  # batches 10..14 were owed and not sent
    sched.claim(0.0)  # taken again: one that went out counts, however close to the stop
    assert sched.due_when_stopped(1.004, grace_s=0.01) == 11


def test_stages_plan_the_integral_of_the_rate_and_batches_follow_the_curve() -> None:
    from wefperf.load.shapes import parse_stages

    schedule = Schedule.for_run(target_eps=0, batch_size=1000, total_events=0, duration_s=0, timeout_s=5,
                                stages=parse_stages("5:5000,5:20000"))
    assert schedule.duration_s == 10 and schedule.timeout_s == 10
    sched = Scheduler(schedule, 0.0)
    claims = []
    while (c := sched.claim(0.0)) is not None:
        claims.append(c)
    assert len(claims) == 75  # 12,500 + 62,500 events in 1,000-event batches
    times = [t for _, t in claims]
    assert times == sorted(times) and times[-1] < 10
    # 12 full batches are due in the first 5 s ramp (12,500 events), the 13th starts at 12,000
    assert sum(1 for t in times if t < 5) == 13
    assert sched.due_batches(5.0) == 13 and sched.due_batches(99.0) == 75
