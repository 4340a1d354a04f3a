"""Unit tests of the reference collector's parsing, counting windows and parquet rows."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from wefperf.collector.parse import BOM, _walk, is_events_batch, parse_batch, type_key
from wefperf.collector.sink import SCHEMA, Chunk, KeyNamer, build_files, build_table
from wefperf.collector.stats import ThroughputStats
from wefperf.payload import build_pool

NS = 'xmlns="http://schemas.microsoft.com/win/2004/08/events/event"'
SECURITY = "Microsoft-Windows-Security-Auditing"
GUID = "{54849625-5478-4994-A5BA-3E3B0328C30D}"


def provider_xml(name: str, style: str) -> str:
    """The three ways a `<Provider>` is written: the seed client's, Windows' own, text only."""
    return {
        "seed": f'<Provider Name="{name}">{name}</Provider>',
        "windows": f'<Provider Name="{name}" Guid="{GUID}"/>',
        "text": f"<Provider>{name}</Provider>",
    }[style]


def event(event_id: str = "4624", provider: str | None = SECURITY, computer: str = "HOST1", prefix: str = "",
          style: str = "seed") -> str:
    prov = provider_xml(provider, style) if provider is not None else ""
    return (
        f"<{prefix}Event {NS}><System>{prov}<EventID>{event_id}</EventID><Level>0</Level>"
        f'<TimeCreated SystemTime="2026-02-08T10:44:41.123Z"/><EventRecordID>77</EventRecordID>'
        f"<Channel>Security</Channel><Computer>{computer}</Computer></System>"
        f'<EventData><Data Name="TargetUserName">a"b\\c</Data></EventData></{prefix}Event>'
    )


def batch(*events: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<Envelope><Body><Events>\n'
            + "\n".join(events) + "\n</Events></Body></Envelope>").encode()


def raw_xml_of(ev: str) -> str:
    """What v0.5.0 stores for an event that `batch` wrote: the newline after the previous tag's `>`
    (its reader skipped that whitespace in the same read), the event, no `</Event>`."""
    return "\n" + ev[: ev.rindex("</")]


def stored(body: bytes) -> list[tuple[int, str, str]]:
    """(EventID, raw_xml, provider) of every event the walk keeps, in body order."""
    parsed = parse_batch(body)
    rows = [(s, event_id, body[s:e].decode(), p) for event_id, sl in parsed.by_event_id.items()
            for s, e, p in zip(sl.starts, sl.ends, sl.providers)]
    return [(event_id, raw, p) for _, event_id, raw, p in sorted(rows)]


def counts(body: bytes) -> dict[str, int]:
    return parse_batch(body).type_counts


def test_type_keys_follow_the_contract():
    body = batch(event(), event(style="windows"), event(style="text"), event("4625"), event("7", provider=""),
                 event("8", provider=None), event("not-a-number"), "<Event><Nothing/></Event>")
    parsed = parse_batch(body)
    assert parsed.type_counts == {
        f"{SECURITY}:4624": 2,  # provider from the <Provider> text: the seed's and the text-only form
        "EventID 4624": 1,  # Windows' self-closing <Provider Name=".." Guid=".."/> has no text
        f"{SECURITY}:4625": 1,
        "EventID 7": 1,
        "EventID 8": 1,
        f"{SECURITY}:0": 1,  # EventID text that is not a number is 0
        "EventID 0": 1,  # no EventID at all: 0 as well, never `unknown`
    }
    assert parsed.events == 8 and not parsed.stopped
    assert sorted(parsed.by_event_id) == [0, 7, 8, 4624, 4625]
    assert type_key("", 5) == "EventID 5" and type_key("P", 5) == "P:5"


def test_every_event_is_stored_with_its_provider_and_raw_xml_cut_before_the_end_tag():
    evs = [event(), event(style="windows"), event(style="text"), event("7", provider=None)]
    assert stored(batch(*evs)) == [
        (4624, raw_xml_of(evs[0]), SECURITY),
        (4624, raw_xml_of(evs[1]), ""),
        (4624, raw_xml_of(evs[2]), SECURITY),
        (7, raw_xml_of(evs[3]), ""),
    ]


def test_prefixed_event_elements_are_not_events():
    body = batch(event(prefix="e:"), event(), event(prefix="w:", style="text"))
    assert counts(body) == {f"{SECURITY}:4624": 1}
    # an unprefixed <Event> inside a prefixed one is still an event
    assert counts(b"<Events><w:Event><Event><EventID>5</EventID></Event></w:Event></Events>") == {"EventID 5": 1}
    # `<Event/>` never is: the real walk takes only an element with an end tag
    assert counts(b"<Events><Event/><Event xmlns='x'/><Event><EventID>6</EventID></Event></Events>") == {"EventID 6": 1}


def _one(inner: str) -> tuple[str, int]:
    """The (provider, EventID) of a single event with this content."""
    [(event_id, _, provider)] = stored(f"<Events><Event>{inner}</Event></Events>".encode())
    return provider, event_id


def test_label_text_rules():
    assert _one("<EventID> 4624\n</EventID>") == ("", 4624)  # text is trimmed
    assert _one("<EventID>+7</EventID>") == ("", 7)  # as Rust's u32 parse
    assert _one("<EventID>-7</EventID>") == ("", 0)
    assert _one("<EventID>4294967295</EventID>") == ("", 4294967295)
    assert _one("<EventID>4294967296</EventID>") == ("", 0)
    assert _one("<EventID>" + "0" * 5000 + "42</EventID>") == ("", 42)
    assert _one("<EventID>&#52;624</EventID>") == ("", 4624)  # entities resolve before the parse
    assert _one("<EventID></EventID>") == ("", 0)
    assert _one("<EventID/>") == ("", 0)
    assert _one("<EventID Qualifiers='0'>4625</EventID>") == ("", 4625)
    # the last EventID / Provider text in the event wins, wherever it is; blank or empty ones do not count
    assert _one("<System><EventID>1</EventID></System><UserData><EventID>2</EventID></UserData>") == ("", 2)
    assert _one("<EventID>3</EventID><EventID> </EventID><EventID/>") == ("", 3)
    assert _one("<Provider>A</Provider><EventID>1</EventID><Provider Name='B'/>") == ("A", 1)
    assert _one("<Provider>A</Provider><X><Provider>B</Provider></X>") == ("B", 0)
    assert _one("<Provider>a&amp;b &lt;c&gt;</Provider>") == ("a&b <c>", 0)
    assert _one("<Provider>a&nbsp;b</Provider><EventID>1</EventID>") == ("", 1)  # unresolvable: empty text
    assert _one("<w:Provider>W</w:Provider><ProviderX>X</ProviderX><EventIDs>9</EventIDs>") == ("", 0)


def test_malformed_xml_stops_the_walk_and_the_events_before_count():
    good = "<Event><EventID>1</EventID></Event>"
    for bad in (
        "<Event><EventID>2</EventID>",  # body ends inside an event
        "<Event><EventID>2</EventID></Even",  # ... or inside its end tag
        '<Event xmlns="x',  # a start tag that never ends
        "</Event><Event><EventID>2</EventID></Event>",  # an end tag that closes no Event
        "<Event><EventID>2</EventID></Event junk>",  # an end tag whose name is not Event
        "<Event><!-- x --><System></Event><Event><EventID>2</EventID></Event>",  # names do not match
        "<!-- never closed <Event><EventID>2</EventID></Event>",
    ):
        parsed = parse_batch(f"<Events>{good}{bad}</Events>".encode())
        assert (parsed.type_counts, parsed.stopped) == ({"EventID 1": 1}, True), bad
    assert not parse_batch(f"<Events>{good}</Events>".encode()).stopped


def test_nested_elements_are_skipped_until_the_matching_end_tag():
    nested = "<Event><EventID>5</EventID><Event><EventID>6</EventID></Event><Provider>P</Provider></Event>"
    body = f"<Events><Event><EventID>1</EventID></Event>{nested}<Event><EventID>7</EventID></Event></Events>"
    assert stored(body.encode()) == [
        (1, "<Event><EventID>1</EventID>", ""),
        (6, nested[: nested.rindex("</Event>")], "P"),  # one event; its last EventID and Provider text
        (7, "<Event><EventID>7</EventID>", ""),
    ]
    # comments and CDATA are opaque: no events, labels or end tags inside them
    body = ("<Events><!-- <Event><EventID>1</EventID></Event> --><Event><EventID>2</EventID>"
            "<![CDATA[</Event><EventID>3</EventID>]]><!-- <Provider>Q</Provider> --></Event></Events>")
    assert counts(body.encode()) == {"EventID 2": 1}
    # text split by a comment is two Text events: the last one wins
    assert _one("<EventID>12<!-- x -->34</EventID>") == ("", 34)


def test_raw_xml_is_cut_where_the_real_reader_stood():
    body = b"<Events>\n  <Event>\n<EventID>1</EventID>\n  </Event>text <Event>tail text\t</Event></Events>"
    assert [raw for _, raw, _ in stored(body)] == [
        "\n  <Event>\n<EventID>1</EventID>",  # whitespace after a tag's `>` is taken; before `</Event>` not
        "<Event>tail text\t",  # after text the position is the `<`; text before `</Event>` stays whole
    ]
    assert [raw for _, raw, _ in stored(b"  <Event><EventID>1</EventID></Event>")] == ["  <Event><EventID>1</EventID>"]
    # A UTF-8 BOM: v0.5.0's reader drops it without counting it, so its slices sit 3 bytes early.
    body = BOM + b"<Events>\n<Event><EventID>1</EventID><Data>xyz</Data></Event></Events>"
    assert stored(body) == [(1, "ts>\n<Event><EventID>1</EventID><Data>xyz</Da", "")]


def test_the_fast_walk_and_the_careful_walk_agree():
    """The careful walk (tag by tag) is the reference for the fast one on well-formed bodies."""
    pool = build_pool(run_id="feedbeef0009", batch_size=300, variants=2, seed=3)
    bodies = [pool.body(0), pool.body(1), batch(event(), event(style="windows"), event(style="text"),
                                                 event("x"), event(provider=None), event(prefix="w:"))]
    for body in bodies:
        fast, careful = _walk(body, 0, careful=False), _walk(body, 0, careful=True)
        assert (fast.pairs, fast.events, fast.stopped) == (careful.pairs, careful.events, careful.stopped)
        assert {k: (v.starts, v.ends, v.providers) for k, v in fast.by_id.items()} == \
            {k: (v.starts, v.ends, v.providers) for k, v in careful.by_id.items()}
    # wefperf's own payload writes Windows' self-closing Provider: labelled by EventID alone
    assert set(parse_batch(pool.body(0)).type_counts) <= {f"EventID {n}" for n in (4624, 4625, 4634, 4672, 4688)}


def test_detection_looks_at_the_first_2000_bytes_only():
    assert is_events_batch(b"<Envelope><Body><Events></Events></Body></Envelope>")
    assert is_events_batch(b"<x><Event></Event></x>")
    assert not is_events_batch(b"<m:Events><m:Event " + NS.encode() + b"></m:Event></m:Events>")
    assert not is_events_batch(b"hello")
    late = ("<Envelope>" + " " * 1990 + "<Events>").encode()
    assert not is_events_batch(late)
    # v0.5.0 cuts its (lossily decoded) body at 2,000 bytes, not characters
    assert not is_events_batch(("é" * 1990 + "<Events>").encode())
    assert is_events_batch(("é" * 996 + "<Events>").encode())  # ends at byte 2,000
    assert not is_events_batch(("é" * 997 + "<Events>").encode())
    # each invalid byte is a 3-byte U+FFFD in the real server's string
    assert is_events_batch(b"\xff" * 664 + b"<Events>")
    assert not is_events_batch(b"\xff" * 665 + b"<Events>")
    # a subscription is checked first: Subscribe and SubscriptionId make it one, whatever else is there
    assert not is_events_batch(b"<Subscribe><SubscriptionId>s1</SubscriptionId></Subscribe><Events></Events>")
    assert is_events_batch(b"<Subscribe/><Events></Events>")


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


def test_rows_carry_the_raw_xml_and_parsed_fields():
    raw = event(computer='WS-1 "quoted"\\x')
    body = batch(raw, "<Event>bad</Event>", event(provider=""), event(style="windows"), event(style="text"))
    parsed = parse_batch(body)
    chunk = Chunk(body, parsed.by_event_id[4624], "2026-02-08T10:44:41.000000Z", "10.0.0.9", None, 1)
    table = build_table([chunk], 4624)
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 4
    first = rows[0]
    assert first["event_id"] == 4624 and first["source_host"] == "10.0.0.9" and first["subscription_id"] is None
    assert first["timestamp"] == "2026-02-08T10:44:41.000000Z"
    data = json.loads(first["event_data"])
    assert data["raw_xml"] == raw_xml_of(raw)
    assert data["parsed"] == {
        "provider": SECURITY, "event_id": 4624, "event_record_id": 77, "level": 0,
        "computer": 'WS-1 "quoted"\\x', "channel": "Security", "time_created": "2026-02-08T10:44:41.123Z",
    }
    providers = [json.loads(r["event_data"])["parsed"]["provider"] for r in rows]
    assert providers == [SECURITY, "", "", SECURITY]  # seed, empty Provider text, Windows' form, text only
    assert [json.loads(r["event_data"])["raw_xml"] for r in rows[1:]] == [
        raw_xml_of(event(provider="")), raw_xml_of(event(style="windows")), raw_xml_of(event(style="text"))]


def test_files_are_split_to_respect_the_maximum_size():
    body = batch(*[event(computer=os.urandom(100).hex()) for i in range(400)])  # incompressible
    parsed = parse_batch(body)
    chunk = Chunk(body, parsed.by_event_id[4624], "t", "h", None, 1)
    files = build_files([chunk], 4624, max_bytes=20_000)
    assert len(files) > 1
    assert all(len(data) <= 20_000 for data, _ in files)
    assert sum(rows for _, rows in files) == 400


async def test_a_large_body_is_walked_off_the_event_loop(monkeypatch) -> None:
    """Small bodies are walked inline; a large one in a worker thread, so one request cannot hold
    the loop for the whole walk of a 64 MiB body."""
    import threading

    from wefperf.collector import server
    from wefperf.collector.sink import Sink
    from wefperf.collector.upload import Uploader

    seen: list[bool] = []
    real = server.parse_batch

    def spy(body: bytes):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(body)

    monkeypatch.setattr(server, "parse_batch", spy)
    uploader = Uploader(None, "b", max_pending_bytes=1 << 30)
    collector = server.Collector(ThroughputStats(), Sink(uploader, flush_interval=60, max_file_bytes=1 << 30),
                                 uploader, "b")
    small = batch(event())
    pool = build_pool(run_id="big1", batch_size=400, event_type="4624")
    large = pool.body(0)
    assert len(small) <= server.PARSE_INLINE_BYTES < len(large)
    assert await collector.ingest(small, "127.0.0.1") and await collector.ingest(large, "127.0.0.1")
    assert seen == [True, False]
    assert collector.stats.total() == 401
