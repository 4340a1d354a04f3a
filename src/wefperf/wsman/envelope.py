"""SOAP 1.2 envelopes of WEF push mode, as text; `encode` makes the UTF-16LE wire form with its BOM.

Client side: Enumerate (once per host), Heartbeat, and the header of an Events delivery (its
body is assembled from pre-built pieces in payload.py). Collector side: an EnumerateResponse
holding one Subscribe, an Ack, and a SOAP fault. Headers carry every namespace they use, so a
namespace-aware XML parser reads them (tests do).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from . import ns

SUBSCRIPTION_NS = "http://schemas.microsoft.com/wbem/wsman/1/subscription"
_DECL = " ".join(f'xmlns:{p}="{u}"' for p, u in ns.PREFIXES.items())


def encode(text: str) -> bytes:
    """The wire form: BOM + UTF-16LE, as Windows and OpenWEC write it."""
    return ns.BOM + text.encode("utf-16-le")


def message_id() -> str:
    return f"uuid:{str(uuid.uuid4()).upper()}"


def _envelope(header: str, body: str) -> str:
    return f'<s:Envelope {_DECL}><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>'


def _client_header(*, to: str, action: str, resource: str, machine: str, mid: str, session: str, extra: str = "",
                   operation: str = "") -> str:
    return (
        f"<a:To>{escape(to)}</a:To>"
        f'<m:MachineID s:mustUnderstand="false">{escape(machine)}</m:MachineID>'
        f'<a:ReplyTo><a:Address s:mustUnderstand="true">{ns.ANONYMOUS}</a:Address></a:ReplyTo>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f'<w:MaxEnvelopeSize s:mustUnderstand="true">{ns.DEFAULT_MAX_ENVELOPE}</w:MaxEnvelopeSize>'
        f"<a:MessageID>{mid}</a:MessageID>"
        f'<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
        f'<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>'
        f'<p:SessionId s:mustUnderstand="false">{session}</p:SessionId>'
        f'<p:OperationID s:mustUnderstand="false">{operation or message_id()}</p:OperationID>'
        f'<p:SequenceId s:mustUnderstand="false">1</p:SequenceId>'
        f'<w:ResourceURI s:mustUnderstand="true">{resource}</w:ResourceURI>'
        f"<w:OperationTimeout>PT60.000S</w:OperationTimeout>{extra}"
    )


def enumerate_request(*, to: str, machine: str, mid: str, session: str, operation: str = "") -> str:
    """The forwarder's first message, and again every Refresh: which subscriptions are there for me?"""
    header = _client_header(to=to, action=ns.ACTION_ENUMERATE, resource=ns.RESOURCE_SUBSCRIPTION,
                            machine=machine, mid=mid, session=session, operation=operation)
    body = "<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>"
    return _envelope(header, body)


def end_request(*, mid: str, operation: str) -> str:
    """What Windows sends after an EnumerateResponse, on the same connection: End of the operation
    (the Enumerate's OperationID), addressed to no one, with an empty body (OpenWEC's captures)."""
    header = (
        f"<a:To>{ns.ANONYMOUS}</a:To>"
        f'<w:ResourceURI s:mustUnderstand="true">{ns.RESOURCE_FULL_DUPLEX}</w:ResourceURI>'
        f'<a:Action s:mustUnderstand="true">{ns.ACTION_END}</a:Action>'
        f"<a:MessageID>{mid}</a:MessageID>"
        f"<p:OperationID>{operation}</p:OperationID>"
    )
    return _envelope(header, "")


def delivery_header(*, to: str, action: str, machine: str, mid: str, session: str, reference: str, bookmark: str) -> str:
    """Header of an Events or Heartbeat message; `reference` is the subscription's ReferenceParameters
    content, copied as header blocks (WS-Addressing), so the collector finds Identifier and Version."""
    extra = (
        f"{reference}<w:AckRequested/>"
        f"<w:Bookmark>{bookmark}</w:Bookmark>" if bookmark else f"{reference}<w:AckRequested/>"
    )
    return _client_header(to=to, action=action, resource=ns.RESOURCE_EVENTLOG, machine=machine, mid=mid,
                          session=session, extra=extra)


def bookmark_xml(channel: str, record_id: int) -> str:
    return f'<BookmarkList><Bookmark Channel="{escape(channel)}" RecordId="{record_id}" IsCurrent="true"/></BookmarkList>'


def heartbeat(*, to: str, machine: str, mid: str, session: str, reference: str, bookmark: str = "") -> str:
    header = delivery_header(to=to, action=ns.ACTION_HEARTBEAT, machine=machine, mid=mid, session=session,
                             reference=reference, bookmark=bookmark)
    return _envelope(header, "<w:Events></w:Events>")


def split_envelope(header: str) -> tuple[str, str]:
    """The text before and after an Events body's event list, around `header`."""
    head = _envelope(header, "<w:Events>")
    return head[: -len("</s:Body></s:Envelope>")], "</w:Events></s:Body></s:Envelope>"


EVENT_OPEN = f'<w:Event Action="{ns.ACTION_EVENT}"><![CDATA['
EVENT_CLOSE = "]]></w:Event>"


def events(header: str, event_xml: list[str]) -> str:
    """A whole Events envelope from text (tests and the cost benchmark; the load uses payload.py)."""
    head, tail = split_envelope(header)
    return head + "".join(EVENT_OPEN + e + EVENT_CLOSE for e in event_xml) + tail


# --- collector side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSpec:
    """What the reference collector offers every host (docs/wsman.md)."""

    identifier: str
    version: str
    notify_to: str
    heartbeat_s: float = 3600.0
    max_time_s: float = 30.0
    max_envelope: int = ns.DEFAULT_MAX_ENVELOPE
    retry_total: int = 5
    retry_s: float = 60.0
    query: str = '<QueryList><Query Id="0"><Select Path="Security">*</Select></Query></QueryList>'


def _server_header(action: str, relates_to: str, mid: str) -> str:
    return (
        f"<a:Action>{action}</a:Action><a:MessageID>{mid}</a:MessageID>"
        f"<a:To>{ns.ANONYMOUS}</a:To><a:RelatesTo>{relates_to}</a:RelatesTo>"
    )


def reference_parameters(spec: SubscriptionSpec) -> str:
    return f'<e:Identifier>{spec.identifier}</e:Identifier><Version xmlns="{SUBSCRIPTION_NS}">{spec.version}</Version>'


def enumerate_response(spec: SubscriptionSpec, *, relates_to: str, machine: str) -> str:
    """One Subscribe envelope inside the EnumerateResponse's Items."""
    sub_header = (
        f"<a:Action>{ns.ACTION_SUBSCRIBE}</a:Action><a:MessageID>{message_id()}</a:MessageID>"
        f"<w:ResourceURI>{ns.RESOURCE_EVENTLOG}</w:ResourceURI>"
        f"<m:MachineID>{escape(machine)}</m:MachineID>"
    )
    delivery = (
        f'<e:Delivery Mode="{ns.DELIVERY_PUSH}">'
        f"<w:Heartbeats>PT{spec.heartbeat_s:.3f}S</w:Heartbeats>"
        f"<e:NotifyTo><a:Address>{escape(spec.notify_to)}</a:Address>"
        f"<a:ReferenceParameters>{reference_parameters(spec)}</a:ReferenceParameters></e:NotifyTo>"
        f'<w:ConnectionRetry Total="{spec.retry_total}">PT{spec.retry_s:.1f}S</w:ConnectionRetry>'
        f"<w:MaxTime>PT{spec.max_time_s:.3f}S</w:MaxTime>"
        f'<w:MaxEnvelopeSize Policy="Notify">{spec.max_envelope}</w:MaxEnvelopeSize>'
        f'<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
        f"<w:ContentEncoding>UTF-16</w:ContentEncoding></e:Delivery>"
    )
    subscribe = (
        f"<e:Subscribe>{delivery}"
        f'<w:Filter Dialect="http://schemas.microsoft.com/win/2004/08/events/eventquery">{spec.query}</w:Filter>'
        f"<w:Bookmark>http://schemas.dmtf.org/wbem/wsman/1/wsman/bookmark/earliest</w:Bookmark>"
        f"<w:SendBookmarks/></e:Subscribe>"
    )
    item = (
        f'<v:Subscription xmlns:v="{SUBSCRIPTION_NS}"><v:Version>{spec.version}</v:Version>'
        f"{_envelope(sub_header, subscribe)}</v:Subscription>"
    )
    body = (
        "<n:EnumerateResponse><n:EnumerationContext/>"
        f"<w:Items>{item}</w:Items><w:EndOfSequence/></n:EnumerateResponse>"
    )
    return _envelope(_server_header(ns.ACTION_ENUMERATE_RESPONSE, relates_to, message_id()), body)


def ack(relates_to: str) -> str:
    """`relates_to` is the request's MessageID exactly as it arrived."""
    return _envelope(_server_header(ns.ACTION_ACK, relates_to, message_id()), "")


def fault(relates_to: str, reason: str) -> str:
    body = (
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason></s:Fault>'
    )
    return _envelope(_server_header(ns.ACTION_FAULT, relates_to, message_id()), body)
