"""WS-Management envelopes read back with a real XML parser: headers, namespaces, UTF-16, CDATA, cuts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from wefperf.collector.parse import parse_batch
from wefperf.payload import find_markers
from wefperf.payload.hosts import build_host_payload
from wefperf.wsman import envelope, ns, parse
from wefperf.wsman.payload import WsmanPayload

NS = {**ns.PREFIXES, "v": envelope.SUBSCRIPTION_NS, "ev": ns.EVENT}
SPEC = envelope.SubscriptionSpec("4C2B7A8E-1111-2222-3333-444455556666", "uuid:AAAABBBB-0000-1111-2222-333344445555",
                                 "https://wec.example:5986/wsman/subscriptions/4C2B7A8E-1111-2222-3333-444455556666")


def _one(root: ET.Element, path: str) -> ET.Element:
    found = root.find(path, NS)
    assert found is not None, path
    return found


def _root(body: bytes) -> ET.Element:
    assert body[:2] == ns.BOM
    return ET.fromstring(body[2:].decode("utf-16-le"))


def _subscription() -> parse.Subscription:
    body = envelope.encode(envelope.enumerate_response(SPEC, relates_to="uuid:x", machine="h"))
    return parse.subscriptions(body)[0]


def test_enumerate_has_every_header_with_its_namespace() -> None:
    body = envelope.encode(envelope.enumerate_request(
        to="https://wec:5986/wsman/SubscriptionManager/WEC", machine="WKS-1.corp.example.com",
        mid="uuid:6E3E7D4A-aaaa-BBBB-cccc-0123456789AB", session="uuid:S"))
    root = _root(body)
    assert root.tag == f"{{{ns.SOAP}}}Envelope"
    h = _one(root, "s:Header")
    assert _one(h, "a:Action").text == ns.ACTION_ENUMERATE
    assert _one(h, "w:ResourceURI").text == ns.RESOURCE_SUBSCRIPTION
    assert _one(h, "m:MachineID").text == "WKS-1.corp.example.com"
    assert _one(h, "a:MessageID").text == "uuid:6E3E7D4A-aaaa-BBBB-cccc-0123456789AB"  # case kept
    for name in ("p:OperationID", "p:SequenceId", "p:SessionId"):
        assert _one(h, name).text
    e = _one(root, "s:Body/n:Enumerate")
    _one(e, "w:OptimizeEnumeration")
    assert int(_one(e, "w:MaxElements").text or "0") > 0


def test_enumerate_response_holds_one_subscribe_with_every_field() -> None:
    root = _root(envelope.encode(envelope.enumerate_response(SPEC, relates_to="uuid:r", machine="h")))
    assert _one(root, "s:Header/a:RelatesTo").text == "uuid:r"
    subs = root.findall(".//e:Subscribe", NS)
    assert len(subs) == 1
    d = _one(subs[0], "e:Delivery")
    assert _one(d, "e:NotifyTo/a:Address").text == SPEC.notify_to
    assert _one(d, "e:NotifyTo/a:ReferenceParameters/e:Identifier").text == SPEC.identifier
    # Version without a namespace: the form OpenWEC writes and the only one it matches
    assert _one(d, "e:NotifyTo/a:ReferenceParameters/Version").text == SPEC.version
    assert _one(d, "w:Heartbeats").text == "PT3600.000S"
    assert _one(d, "w:MaxTime").text == "PT30.000S"
    assert _one(d, "w:MaxEnvelopeSize").text == "512000"
    assert _one(d, "w:ContentEncoding").text == "UTF-16"
    _one(subs[0], "w:Bookmark")
    sub = _subscription()
    assert (sub.notify_to, sub.identifier, sub.version) == (SPEC.notify_to, SPEC.identifier, SPEC.version)
    assert (sub.heartbeat_s, sub.max_time_s, sub.max_envelope, sub.content_encoding) == (3600.0, 30.0, 512000, "UTF-16")
    assert sub.bookmark and sub.channels == ("Security",)


def _deliveries(events: int, max_envelope: int = 512_000):
    hosts = build_host_payload(run_id="abcdef012345", hosts=3, max_items=100, seed=7, variants=1)
    sub = _subscription()
    env = WsmanPayload(hosts).envelopes(4, events, 2, 5000, to=sub.notify_to, machine="WKS-2.corp.example.com",
                                        session="uuid:S", reference=sub.reference, max_envelope=max_envelope)
    return hosts, env


def test_events_envelope_is_utf16le_with_bom_and_its_cdata_events_round_trip() -> None:
    hosts, env = _deliveries(25)
    assert len(env.cuts) == 1
    root = _root(env.data)
    h = _one(root, "s:Header")
    assert _one(h, "a:Action").text == ns.ACTION_EVENTS
    assert _one(h, "a:MessageID").text == env.message_ids[0]
    assert _one(h, "e:Identifier").text == SPEC.identifier
    assert _one(h, "Version").text == SPEC.version
    _one(h, "w:AckRequested")
    mark = _one(h, "w:Bookmark/BookmarkList/Bookmark")
    assert mark.get("Channel") == "Security" and mark.get("RecordId") == str(5000 + 24)
    items = root.findall("s:Body/w:Events/w:Event", NS)
    assert len(items) == 25 and {i.get("Action") for i in items} == {ns.ACTION_EVENT}
    # each CDATA is one Windows event, the same bytes the batch protocol would send, without its separator
    batch = hosts.body(4, 25, 2, 5000)
    inner = [ET.fromstring(i.text or "") for i in items]
    assert [int(_one(e, "ev:System/ev:EventRecordID").text or "0") for e in inner] == list(range(5000, 5025))
    assert {_one(e, "ev:System/ev:Computer").text for e in inner} == {"WKS-00002.corp.example.com"}
    cdata = "".join(i.text or "" for i in items)
    assert "\n".join(i.text or "" for i in items) + "\n" == batch[batch.index(b"<Event "):batch.rindex(b"</Events>")].decode()
    assert [m.seq(100) for m in find_markers(cdata)] == list(range(400, 425))
    parsed = parse.request(parse.decode(env.data), with_events=True)
    assert parsed.events == [i.text for i in items]
    assert parse_batch(b"<Events>" + "".join(parsed.events).encode() + b"</Events>").events == 25


def test_a_delivery_is_cut_so_every_envelope_stays_under_max_envelope_size() -> None:
    _, env = _deliveries(100, max_envelope=40_000)
    assert len(env.cuts) > 2
    seen: list[int] = []
    for (a, b), mid, record in zip(env.cuts, env.message_ids, env.records, strict=True):
        assert b - a <= 40_000
        root = _root(env.data[a:b])
        assert _one(root, "s:Header/a:MessageID").text == mid
        items = root.findall("s:Body/w:Events/w:Event", NS)
        seqs = [m.seq(100) for i in items for m in find_markers(i.text or "")]
        assert int(_one(root, "s:Header/w:Bookmark/BookmarkList/Bookmark").get("RecordId") or 0) == record
        seen += seqs
    assert seen == list(range(400, 500))
    assert len(set(env.message_ids)) == len(env.cuts)


def test_ack_relates_to_the_message_id_byte_for_byte() -> None:
    mid = "uuid:0a1B2c3D-0000-AbCd-1111-222233334444"
    body = envelope.encode(envelope.ack(mid))
    assert parse.ack_relates_to(body) == (ns.ACTION_ACK, mid)
    assert _one(_root(body), "s:Header/a:RelatesTo").text == mid


def test_durations() -> None:
    assert parse.duration_s("PT3600.000S") == 3600.0
    assert parse.duration_s("PT1M30S") == 90.0
