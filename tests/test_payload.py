"""The pre-built payload: contract format, real field names, unique markers, exact type counts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

from wefperf.payload import build_pool, find_markers
from wefperf.payload.templates import TEMPLATES

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"


def _events(body: bytes) -> list[ET.Element]:
    root = ET.fromstring(body)
    assert root.tag == "Envelope"
    return root.findall(f"./Body/Events/{NS}Event")


def test_body_is_the_contract_batch_format_and_detected_by_the_first_2000_chars() -> None:
    pool = build_pool(run_id="abc", batch_size=5, event_type="4624", total_events=10)
    body = pool.body(0)
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert b"<Events>" in body[:2000]
    events = _events(body)
    assert len(events) == 5
    system = events[0].find(f"{NS}System")
    assert system is not None
    assert system.find(f"{NS}Provider").get("Name") == "Microsoft-Windows-Security-Auditing"
    assert system.find(f"{NS}EventID").text == "4624"
    assert system.find(f"{NS}Channel").text == "Security"


def test_fixed_event_type_accepts_any_id() -> None:
    pool = build_pool(run_id="abc", batch_size=3, event_type="5156", total_events=3)
    ids = {e.find(f"{NS}System/{NS}EventID").text for e in _events(pool.body(0))}
    assert ids == {"5156"}


def test_mix_has_several_types_with_their_real_field_names() -> None:
    pool = build_pool(run_id="abc", batch_size=1000, variants=2, seed=1)
    events = _events(pool.body(0))
    ids = Counter(e.find(f"{NS}System/{NS}EventID").text for e in events)
    assert set(ids) == {"4624", "4625", "4634", "4672", "4688"}
    assert ids["4624"] > ids["4625"]  # weighted, not uniform
    for event in events:
        eid = int(event.find(f"{NS}System/{NS}EventID").text)
        names = [d.get("Name") for d in event.find(f"{NS}EventData")]
        assert names[:-1] == list(TEMPLATES[eid].fields)
        assert names[-1] == "WefperfMarker"


def test_every_event_has_a_unique_marker_across_batches() -> None:
    pool = build_pool(run_id="r0", batch_size=100, total_events=1000)
    seen = set()
    for batch in range(pool.total_batches):
        for m in find_markers(pool.body(batch).decode()):
            assert m.run_id == "r0" and m.batch == batch
            seen.add(m.seq(100))
    assert seen == set(range(1000))


def test_count_mode_last_batch_is_short() -> None:
    pool = build_pool(run_id="r0", batch_size=1000, total_events=2500)
    assert pool.total_batches == 3
    assert [pool.events_in(b) for b in range(3)] == [1000, 1000, 500]
    assert len(_events(pool.body(2))) == 500


def test_bodies_are_patched_not_rebuilt() -> None:
    pool = build_pool(run_id="r0", batch_size=10, event_type="4624")
    a, b = pool.body(1), pool.body(2)
    assert len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    assert len(diff) == 10  # one digit per event differs
    assert re.search(rb"r0:0000000001:00000", a)


def test_expected_types_match_what_was_sent() -> None:
    pool = build_pool(run_id="r0", batch_size=50, total_events=430, variants=3, seed=2)
    sent: Counter[str] = Counter()
    failed = [1, 8]
    for batch in range(pool.total_batches):
        if batch in failed:
            continue
        for e in _events(pool.body(batch)):
            sent["Microsoft-Windows-Security-Auditing:" + e.find(f"{NS}System/{NS}EventID").text] += 1
    assert pool.expected_types(pool.total_batches, failed) == sent


def test_framed_request_carries_a_correct_content_length() -> None:
    from wefperf.payload.wire import request_head

    pool = build_pool(run_id="r0", batch_size=7, event_type="4624")
    pool.frame(lambda n: request_head("h:1", "/wsman/events", n))
    raw = pool.request(3)
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert length == len(body) and body == pool.body(3)
    assert b"Content-Type: application/soap+xml" in head
