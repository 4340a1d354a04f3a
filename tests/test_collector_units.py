"""Unit tests of the reference collector's parsing, counting windows and parquet rows."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from wefperf.collector.parse import is_events_batch, parse_batch, type_key
from wefperf.collector.sink import SCHEMA, Chunk, KeyNamer, build_files, build_table
from wefperf.collector.stats import ThroughputStats

NS = 'xmlns="http://schemas.microsoft.com/win/2004/08/events/event"'


def event(event_id: str = "4624", provider: str | None = "Microsoft-Windows-Security-Auditing",
          computer: str = "HOST1", prefix: str = "") -> str:
    prov = f'<Provider Name="{provider}"/>' if provider is not None else ""
    return (
        f"<{prefix}Event {NS}><System>{prov}<EventID>{event_id}</EventID><Level>0</Level>"
        f'<TimeCreated SystemTime="2026-02-08T10:44:41.123Z"/><EventRecordID>77</EventRecordID>'
        f"<Channel>Security</Channel><Computer>{computer}</Computer></System>"
        f'<EventData><Data Name="TargetUserName">a"b\\c</Data></EventData></{prefix}Event>'
    )


def batch(*events: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<Envelope><Body><Events>\n'
            + "\n".join(events) + "\n</Events></Body></Envelope>").encode()


def test_type_keys_follow_the_contract():
    body = batch(event(), event(), event("4625"), event("7", provider=""), event("8", provider=None),
                 event("not-a-number"), "<Event><Nothing/></Event>")
    parsed = parse_batch(body)
    assert parsed.type_counts == {
        "Microsoft-Windows-Security-Auditing:4624": 2,
        "Microsoft-Windows-Security-Auditing:4625": 1,
        "EventID 7": 1,
        "EventID 8": 1,
        "unknown": 2,
    }
    assert parsed.events == 7 and parsed.unknown == 2
    # unknown events are not stored; the others are grouped by EventID with exact spans
    assert sorted(parsed.by_event_id) == [7, 8, 4624, 4625]
    s = parsed.by_event_id[4624]
    assert body[s.starts[0]:s.ends[0]].decode() == event()
    assert type_key("", 5) == "EventID 5" and type_key("P", 5) == "P:5"


def test_namespaced_event_elements_are_walked():
    parsed = parse_batch(batch(event(prefix="e:"), event()))
    assert parsed.type_counts == {"Microsoft-Windows-Security-Auditing:4624": 2}


def test_truncated_body_counts_the_events_before_the_break():
    body = batch(event(), event("4625"))
    cut = body[: body.rindex(b"</Event>")]
    parsed = parse_batch(cut)
    assert parsed.type_counts == {"Microsoft-Windows-Security-Auditing:4624": 1}
    assert parsed.truncated


def test_detection_looks_at_the_first_2000_characters_only():
    assert is_events_batch(b"<Envelope><Body><Events></Events></Body></Envelope>")
    assert is_events_batch(b"<x><Event></Event></x>")
    assert not is_events_batch(b"<m:Events><m:Event " + NS.encode() + b"></m:Event></m:Events>")
    assert not is_events_batch(b"hello")
    late = ("<Envelope>" + " " * 1990 + "<Events>").encode()
    assert not is_events_batch(late)
    # characters, not bytes: 1,990 two-byte characters still leave room for <Events>
    assert is_events_batch(("é" * 1990 + "<Events>").encode())


def test_stats_windows_totals_and_sort_order():
    now = [1000.0]
    stats = ThroughputStats(clock=lambda: now[0])
    stats.add({"A:1": 10, "B:2": 5})
    now[0] += 100  # out of the last minute, still in the last five
    stats.add({"B:2": 30, "C:3": 30})
    rows = stats.snapshot()
    assert [r["event_type"] for r in rows] == ["B:2", "C:3", "A:1"]  # last_minute desc, then name
    assert rows[0] == {"event_type": "B:2", "total_events": 35, "last_minute": 30,
                       "last_five_minutes": 35, "average_per_second_last_minute": 0.5}
    assert rows[2] == {"event_type": "A:1", "total_events": 10, "last_minute": 0,
                       "last_five_minutes": 10, "average_per_second_last_minute": 0.0}
    now[0] += 301
    rows = stats.snapshot()
    assert all(r["last_minute"] == 0 and r["last_five_minutes"] == 0 for r in rows)
    assert stats.total() == 75


def test_key_names_are_unique_within_one_second():
    namer = KeyNamer()
    when = datetime(2026, 2, 8, 10, 44, 41, tzinfo=timezone.utc)
    keys = [namer.key(4624, when) for _ in range(3)] + [namer.key(4625, when)]
    assert keys == [
        "event_type=4624/year=2026/month=02/day=08/events_4624_20260208_104441.parquet",
        "event_type=4624/year=2026/month=02/day=08/events_4624_20260208_104441_1.parquet",
        "event_type=4624/year=2026/month=02/day=08/events_4624_20260208_104441_2.parquet",
        "event_type=4625/year=2026/month=02/day=08/events_4625_20260208_104441.parquet",
    ]


def test_rows_carry_the_raw_xml_exactly_and_parsed_fields():
    raw = event(computer='WS-1 "quoted"\\x')
    body = batch(raw, "<Event>bad</Event>", event(provider=""))
    parsed = parse_batch(body)
    chunk = Chunk(body, parsed.by_event_id[4624], "2026-02-08T10:44:41.000000Z", "10.0.0.9", None, 1)
    table = build_table([chunk], 4624)
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 2
    first = rows[0]
    assert first["event_id"] == 4624 and first["source_host"] == "10.0.0.9" and first["subscription_id"] is None
    assert first["timestamp"] == "2026-02-08T10:44:41.000000Z"
    data = json.loads(first["event_data"])
    assert data["raw_xml"] == raw
    assert data["parsed"] == {
        "provider": "Microsoft-Windows-Security-Auditing", "event_id": 4624, "event_record_id": 77, "level": 0,
        "computer": 'WS-1 "quoted"\\x', "channel": "Security", "time_created": "2026-02-08T10:44:41.123Z",
    }
    assert json.loads(rows[1]["event_data"])["parsed"]["provider"] == ""


def test_files_are_split_to_respect_the_maximum_size():
    body = batch(*[event(computer=os.urandom(100).hex()) for i in range(400)])  # incompressible
    parsed = parse_batch(body)
    chunk = Chunk(body, parsed.by_event_id[4624], "t", "h", None, 1)
    files = build_files([chunk], 4624, max_bytes=20_000)
    assert len(files) > 1
    assert all(len(data) <= 20_000 for data, _ in files)
    assert sum(rows for _, rows in files) == 400
