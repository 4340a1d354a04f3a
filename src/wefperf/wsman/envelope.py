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

SUBSCRIPTION_NS = ns.SUBSCRIPTION
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
    (OpenWEC) or ReferenceProperties (Microsoft's WEC) content, copied as header blocks
    (WS-Addressing), so the collector finds its Identifier (and Version, when it gave one)."""
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
    """What the reference collector offers every host (docs/wsman.md); defaults as OpenWEC's."""

    identifier: str
    version: str
    notify_to: str
    heartbeat_s: float = 3600.0
    max_time_s: float = 30.0
    max_envelope: int = ns.DEFAULT_MAX_ENVELOPE
    retry_total: int = 5
    retry_s: float = 60.0
    query: str = '<QueryList><Query Id="0"><Select Path="Security">*</Select></Query></QueryList>'
    max_elements: int | None = None  # None: no MaxElements element
    content_format: str = "Raw"
    name: str = "wefperf"  # the SubscriptionName option
    # SHA-1 of the CA that signs the clients' certificates (TLS mode); empty: the Kerberos profile, as
    # OpenWEC offers over http (wefperf's clients never authenticate with Kerberos: docs/wsman.md)
    thumbprint: str = ""
    bookmark: str = ns.BOOKMARK_EARLIEST  # a URI, or BookmarkList XML; empty: no w:Bookmark


_SUBSCRIBE_DECL = " ".join(f'xmlns:{p}="{ns.PREFIXES[p]}"' for p in ("s", "a", "e", "n", "w", "p"))


def _server_header(action: str, relates_to: str, mid: str) -> str:
    return (
        f'<a:To>{ns.ANONYMOUS}</a:To><a:Action s:mustUnderstand="true">{action}</a:Action>'
        f'<a:MessageID>{mid}</a:MessageID><p:SequenceId s:mustUnderstand="false">1</p:SequenceId>'
        f"<a:RelatesTo>{relates_to}</a:RelatesTo>"
    )


def reference_parameters(spec: SubscriptionSpec) -> str:
    """Identifier and Version; `Version` without a namespace, the form OpenWEC writes and matches."""
    return f"<e:Identifier>{spec.identifier}</e:Identifier><Version>{escape(spec.version)}</Version>"


def _option_set(spec: SubscriptionSpec) -> str:
    """The Subscribe's options. No Compression: this collector cannot read SLDC (docs/wsman.md)."""
    flags = ["IgnoreChannelError", "CDATA"] + (["ReadExistingEvents"] if spec.bookmark == ns.BOOKMARK_EARLIEST else [])
    return (
        f'<w:OptionSet xmlns:xsi="{ns.XSI}">'
        f'<w:Option Name="SubscriptionName">{escape(spec.name)}</w:Option>'
        f'<w:Option Name="ContentFormat">{escape(spec.content_format)}</w:Option>'
        + "".join(f'<w:Option Name="{flag}" xsi:nil="true"/>' for flag in flags)
        + "</w:OptionSet>"
    )


def _policy(spec: SubscriptionSpec) -> str:
    """How the client authenticates to NotifyTo: its certificate (issued by `thumbprint`'s CA) or Kerberos."""
    if spec.thumbprint:
        auth = (f'<auth:Authentication Profile="{ns.PROFILE_HTTPS_MUTUAL}"><auth:ClientCertificate>'
                f'<auth:Thumbprint Role="issuer">{spec.thumbprint}</auth:Thumbprint>'
                "</auth:ClientCertificate></auth:Authentication>")
    else:
        auth = f'<auth:Authentication Profile="{ns.PROFILE_KERBEROS}"/>'
    return (f'<c:Policy xmlns:c="{ns.POLICY}" xmlns:auth="{ns.AUTHENTICATION}">'
            f"<c:ExactlyOne><c:All>{auth}</c:All></c:ExactlyOne></c:Policy>")


def _bookmark(spec: SubscriptionSpec) -> str:
    if not spec.bookmark:
        return ""
    inner = spec.bookmark if spec.bookmark.lstrip().startswith("<") else escape(spec.bookmark)
    return f"<w:Bookmark>{inner}</w:Bookmark>"


def subscribe(spec: SubscriptionSpec) -> str:
    """One Subscribe envelope, shaped as OpenWEC writes it (server/src/soap.rs) and as Microsoft's
    collector does in OpenWEC's captures: EndTo and NotifyTo with ReferenceParameters, Delivery in
    Events mode with Heartbeats, ConnectionRetry, MaxElements (when offered), MaxTime,
    MaxEnvelopeSize and ContentEncoding, the Filter, the Bookmark and SendBookmarks."""
    header = (
        f"<a:To>{ns.ANONYMOUS}</a:To>"
        f'<w:ResourceURI s:mustUnderstand="true">{ns.RESOURCE_EVENTLOG}</w:ResourceURI>'
        f'<a:ReplyTo><a:Address s:mustUnderstand="true">{ns.ANONYMOUS}</a:Address></a:ReplyTo>'
        f'<a:Action s:mustUnderstand="true">{ns.ACTION_SUBSCRIBE}</a:Action>'
        f'<w:MaxEnvelopeSize s:mustUnderstand="true">{spec.max_envelope}</w:MaxEnvelopeSize>'
        f"<a:MessageID>{message_id()}</a:MessageID>"
        f'<p:OperationID s:mustUnderstand="false">{message_id()}</p:OperationID>'
        f'<p:SequenceId s:mustUnderstand="false">1</p:SequenceId>'
        f"{_option_set(spec)}"
    )
    address = escape(spec.notify_to)
    reference = f"<a:ReferenceParameters>{reference_parameters(spec)}</a:ReferenceParameters>"
    max_elements = f"<w:MaxElements>{spec.max_elements}</w:MaxElements>" if spec.max_elements is not None else ""
    delivery = (
        f'<e:Delivery Mode="{ns.DELIVERY_EVENTS}">'
        f"<w:Heartbeats>PT{spec.heartbeat_s:.3f}S</w:Heartbeats>"
        f"<e:NotifyTo><a:Address>{address}</a:Address>{reference}{_policy(spec)}</e:NotifyTo>"
        f'<w:ConnectionRetry Total="{spec.retry_total}">PT{spec.retry_s:.1f}S</w:ConnectionRetry>'
        f"{max_elements}<w:MaxTime>PT{spec.max_time_s:.3f}S</w:MaxTime>"
        f'<w:MaxEnvelopeSize Policy="Notify">{spec.max_envelope}</w:MaxEnvelopeSize>'
        f"<w:ContentEncoding>UTF-16</w:ContentEncoding></e:Delivery>"
    )
    body = (
        f"<e:Subscribe><e:EndTo><a:Address>{address}</a:Address>{reference}</e:EndTo>{delivery}"
        f'<w:Filter Dialect="{ns.EVENT_QUERY}">{spec.query}</w:Filter>'
        f"{_bookmark(spec)}<w:SendBookmarks/></e:Subscribe>"
    )
    return f"<s:Envelope {_SUBSCRIBE_DECL}><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"


def enumerate_response(spec: SubscriptionSpec, *, relates_to: str, machine: str) -> str:
    """One Subscription item (its Version, then its Subscribe envelope) in the EnumerateResponse's Items.
    `machine` (the client's MachineID) is not echoed: neither OpenWEC nor Microsoft's collector does."""
    del machine
    item = (
        f'<m:Subscription xmlns:m="{ns.SUBSCRIPTION}"><m:Version>{escape(spec.version)}</m:Version>'
        f"{subscribe(spec)}</m:Subscription>"
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
