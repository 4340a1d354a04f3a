"""Load shapes: stages parse, their integral plans the exact events, batches follow the curve."""

from __future__ import annotations

import math

import pytest

from wefperf.load.shapes import RateCurve, Stage, parse_stages


def test_stages_parse_and_bad_input_names_the_part() -> None:
    assert parse_stages("5:5000, 5:20_000") == [Stage(5, 5000), Stage(5, 20000)]
    for bad, why in [("5", "not SECS:EPS"), ("x:1", "must be numbers"), ("0:100", "more than 0 seconds"),
                     ("5:-1", "0 or more"), ("", "no stages"), ("5:0,3:0", "nothing would be sent")]:
        with pytest.raises(ValueError, match=why):
            parse_stages(bad)


def test_ramps_integrate_to_the_planned_events() -> None:
    curve = RateCurve.from_stages(parse_stages("5:5000,5:20000"))
    assert curve.duration_s == 10
    assert curve.total_events == 12_500 + 62_500
    assert curve.events_by(5) == 12_500
    assert curve.rate_at(2.5) == 2500 and curve.rate_at(7.5) == 12_500
    assert math.isclose(curve.events_by(10), 75_000)


def test_time_at_inverts_events_by_on_ramps_plateaus_and_zero_stretches() -> None:
    curve = RateCurve.from_stages(parse_stages("4:0,5:5000,10:5000,5:0,3:8000"))
    for events in (1, 10, 999, 12_500, 12_501, 40_000, 62_499, 62_500, 70_000, 73_000):
        t = curve.time_at(events)
        assert t is not None and math.isclose(curve.events_by(t), events, rel_tol=1e-9), events
    assert curve.time_at(1) is not None and curve.time_at(1) > 4  # nothing is due in the idle first stage
    assert curve.time_at(curve.total_events) is None


def test_constant_rate_is_one_flat_segment_open_ended_in_count_mode() -> None:
    closed = RateCurve.constant(1000, 10)
    assert closed.total_events == 10_000 and closed.time_at(2500) == 2.5
    open_ended = RateCurve.constant(1000, None)
    assert open_ended.duration_s is None and open_ended.total_events == math.inf
    assert open_ended.time_at(123_000) == 123.0 and open_ended.events_by(50) == 50_000
