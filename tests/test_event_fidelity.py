"""The events a simulated host forwards, as Windows forwards them (issue 20 §5).

Every template carries the EventData fields of Microsoft's documented schema for its event and
version; an event's text ends at `</Event>` (no trailing newline); with the subscription's
ContentFormat `RenderedText` each event carries a RenderingInfo block after EventData, as in the
captures of OpenWEC's doc/protocol.md, and the S3 markers and the collector's count are unchanged.
Every event is read back with a real XML parser (ElementTree).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from wefperf.collector.parse import parse_batch
from wefperf.model import event_id_of
from wefperf.payload import find_markers
from wefperf.payload.hosts import build_host_payload
from wefperf.payload.pool import build_pool
from wefperf.payload.templates import TEMPLATES
from wefperf.wsman import envelope, ns, parse
from wefperf.wsman.payload import WsmanPayload

EV = {"ev": ns.EVENT}
NS = {**ns.PREFIXES, "ev": ns.EVENT}

# Microsoft Learn, "Advanced security audit policy settings" event pages (learn.microsoft.com,
# windows/security/threat-protection/auditing/event-NNNN): the Event XML schema of each event at the
# version named there. Versions: 4624 v2 (Windows 10 / Server 2016), 4625 v0, 4634 v0, 4672 v0, 4688 v2.
DOCUMENTED = {
    4624: (2, (
        "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "TargetUserSid",
        "TargetUserName", "TargetDomainName", "TargetLogonId", "LogonType", "LogonProcessName",
        "AuthenticationPackageName", "WorkstationName", "LogonGuid", "TransmittedServices", "LmPackageName",
        "KeyLength", "ProcessId", "ProcessName", "IpAddress", "IpPort", "ImpersonationLevel",
        "RestrictedAdminMode", "TargetOutboundUserName", "TargetOutboundDomainName", "VirtualAccount",
        "TargetLinkedLogonId", "ElevatedToken")),
    4625: (0, (
        "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "TargetUserSid",
        "TargetUserName", "TargetDomainName", "Status", "FailureReason", "SubStatus", "LogonType",
        "LogonProcessName", "AuthenticationPackageName", "WorkstationName", "TransmittedServices",
        "LmPackageName", "KeyLength", "ProcessId", "ProcessName", "IpAddress", "IpPort")),
    4634: (0, ("TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId", "LogonType")),
    4672: (0, ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "PrivilegeList")),
    4688: (2, (
        "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId",
        "NewProcessName", "TokenElevationType", "ProcessId", "CommandLine", "TargetUserSid", "TargetUserName",
        "TargetDomainName", "TargetLogonId", "ParentProcessName", "MandatoryLabel")),
}
SPEC = envelope.SubscriptionSpec("4C2B7A8E-1111-2222-3333-444455556666", "uuid:AAAABBBB-0000-1111-2222-333344445555",
                                 "https://wec.example:5986/wsman/subscriptions/4C2B7A8E-1111-2222-3333-444455556666")


@pytest.mark.parametrize("event_id", sorted(DOCUMENTED))
def test_every_template_has_the_documented_fields_and_version(event_id: int) -> None:
    """The 4624 template had 21 fields; Windows 10 sends 27 (RestrictedAdminMode to ElevatedToken)."""
    version, fields = DOCUMENTED[event_id]
    assert TEMPLATES[event_id].fields == fields
    pool = build_pool(run_id="abc123", batch_size=3, event_type=str(event_id), seed=1)
    body = pool.body(0).decode()
    for event in ET.fromstring("<x>" + body[body.index("<Event "):body.rindex("</Events>")] + "</x>"):
        assert event.findtext("ev:System/ev:Version", namespaces=EV) == str(version)
        names = [d.get("Name") for d in event.iterfind("ev:EventData/ev:Data", EV)]
        assert names == [*fields, "WefperfMarker"]
    assert set(DOCUMENTED) == set(TEMPLATES)


def _subscription(content_format: str = "Raw") -> parse.Subscription:
    spec = envelope.SubscriptionSpec(SPEC.identifier, SPEC.version, SPEC.notify_to, content_format=content_format)
    return parse.subscriptions(envelope.encode(envelope.enumerate_response(spec, relates_to="uuid:r", machine="h")))[0]


def _cdata(content_format: str, events: int = 60, event_type: str = "", max_envelope: int = 512_000) -> list[str]:
    hosts = build_host_payload(run_id="abcdef012345", hosts=3, max_items=100, seed=7, variants=1, event_type=event_type)
    sub = _subscription(content_format)
    assert sub.content_format == content_format
    env = WsmanPayload(hosts).envelopes(
        4, events, 2, 5000, to=sub.notify_to, machine="WKS-2.corp.example.com", session="uuid:S",
        reference=sub.reference, max_envelope=max_envelope, content_format=sub.content_format)
    out: list[str] = []
    for a, b in env.cuts:
        text = env.data[a + 2:b].decode("utf-16-le")
        items = ET.fromstring(text).findall("s:Body/w:Events/w:Event", NS)
        wire = parse.request(text, with_events=True).events  # as sent: the parser turns CR LF into LF
        assert [i.text for i in items] == [e.replace("\r\n", "\n") for e in wire]
        out += wire
    return out


@pytest.mark.parametrize("content_format", ["Raw", "RenderedText"])
def test_each_event_in_the_cdata_ends_at_its_closing_tag(content_format: str) -> None:
    """Windows' CDATA ends at `</Event>`; wefperf's ended with `</Event>\\n` (a blank line per event in
    OpenWEC's Files output, one byte more per event in its counters)."""
    events = _cdata(content_format)
    assert len(events) == 60
    assert all(e.startswith("<Event ") and e.endswith("</Event>") for e in events)


def test_the_batch_body_keeps_one_event_per_line() -> None:
    """The plain batch (docs/contract.md) is unchanged: events separated by a newline, detected early."""
    hosts = build_host_payload(run_id="abcdef012345", hosts=3, max_items=10, seed=7, variants=1)
    body = hosts.body(0, 3, 0, 100)
    assert body.count(b"</Event>\n") == 3 and b"</Event>\n<Event " in body
    assert body.endswith(b"</Event>\n</Events></Body></Envelope>\n")
    pool = build_pool(run_id="abc123", batch_size=3, seed=1).body(0)
    assert pool.count(b"</Event>\n") == 3


def _rendering(event: ET.Element) -> ET.Element:
    children = list(event)
    assert [c.tag for c in children] == [f"{{{ns.EVENT}}}{n}" for n in ("System", "EventData", "RenderingInfo")]
    return children[2]


@pytest.mark.parametrize("event_id", sorted(DOCUMENTED))
def test_rendered_text_adds_rendering_info_after_event_data(event_id: int) -> None:
    """The block of the captures: Culture, then Message, Level, Task, Opcode, Channel, Provider, Keywords."""
    for text in _cdata("RenderedText", events=5, event_type=str(event_id)):
        event = ET.fromstring(text)
        info = _rendering(event)
        assert info.get("Culture") == "en-US"
        assert [c.tag.rsplit("}", 1)[1] for c in info] == [
            "Message", "Level", "Task", "Opcode", "Channel", "Provider", "Keywords"]
        assert info.findtext("ev:Channel", namespaces=EV) == "Security"
        assert info.findtext("ev:Provider", namespaces=EV) == "Microsoft Windows security auditing."
        assert info.findtext("ev:Level", namespaces=EV) == "Information"
        assert info.findtext("ev:Opcode", namespaces=EV) == "Info"
        keywords = [k.text for k in info.iterfind("ev:Keywords/ev:Keyword", EV)]
        assert keywords == ["Audit Failure" if event_id == 4625 else "Audit Success"]
        message = info.findtext("ev:Message", namespaces=EV) or ""
        data = {d.get("Name"): d.text or "" for d in event.iterfind("ev:EventData/ev:Data", EV)}
        # the message renders this event's own values (a process name, a logon id)
        shown = data.get("NewProcessName") or data.get("ProcessName") or data.get("TargetLogonId") or data["SubjectLogonId"]
        assert shown in message, (shown, message)
        assert "WefperfMarker" not in message and data["WefperfMarker"] not in message


def test_a_rendered_4624_message_is_about_as_long_as_windows_one() -> None:
    """Windows' 4624 message alone is 2.3 to 2.7 KB (CR LF line ends, as its message strings have):
    a RenderedText fleet sends about twice the bytes of a Raw one."""
    raw = "".join(_cdata("Raw", events=20, event_type="4624"))
    rendered = _cdata("RenderedText", events=20, event_type="4624")
    for text in rendered:
        message = text[text.index("<Message>") + 9:text.index("</Message>")]
        assert 2_200 <= len(message.encode()) <= 3_200, len(message.encode())
        assert message.count("\r\n") > 50 and "\n" not in message.replace("\r\n", "")
        assert (_rendering(ET.fromstring(text)).findtext("ev:Message", namespaces=EV) or "").startswith(
            "An account was successfully logged on.\n\nSubject:\n\tSecurity ID:\t\tS-1-5-21-")
    assert len("".join(rendered)) > 2 * len(raw)


def test_rendered_events_keep_their_markers_and_the_collector_counts_them() -> None:
    """The S3 accounting reads the same markers; the reference collector's walk counts every event
    (it labels them by RenderingInfo's Provider text, the last it reads: still the same EventID)."""
    raw, rendered = _cdata("Raw"), _cdata("RenderedText")
    seqs = [m.seq(100) for m in find_markers("".join(rendered))]
    assert seqs == [m.seq(100) for m in find_markers("".join(raw))] == list(range(400, 460))
    parsed = parse_batch(b"<Events>" + "".join(rendered).encode() + b"</Events>")
    assert parsed.events == 60 and not parsed.stopped
    by_id = {event_id_of(k): n for k, n in parsed.type_counts.items()}
    raw_ids = {event_id_of(k): n for k, n in parse_batch(b"<Events>" + "".join(raw).encode() + b"</Events>").type_counts.items()}
    assert by_id == raw_ids


def test_rendered_envelopes_stay_under_max_envelope_size() -> None:
    hosts = build_host_payload(run_id="abcdef012345", hosts=3, max_items=100, seed=7, variants=1)
    sub = _subscription("RenderedText")
    env = WsmanPayload(hosts).envelopes(0, 100, 0, 1, to=sub.notify_to, machine="m", session="uuid:S",
                                        reference=sub.reference, max_envelope=60_000, content_format="RenderedText")
    assert len(env.cuts) > 3 and all(b - a <= 60_000 for a, b in env.cuts)
    assert [m.seq(100) for m in find_markers(env.data.decode("utf-16-le", "replace"))] == list(range(100))


def test_a_subscribe_without_content_format_is_raw() -> None:
    """MS-WSMV: without the ContentFormat option the client sends Raw events."""
    text = envelope.enumerate_response(SPEC, relates_to="uuid:r", machine="h")
    bare = re.sub(r"<w:OptionSet .*?</w:OptionSet>", "", text)
    assert "ContentFormat" not in bare
    assert parse.subscriptions(envelope.encode(bare))[0].content_format == "Raw"
    assert _subscription("RenderedText").content_format == "RenderedText"
