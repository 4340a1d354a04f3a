"""Reading WEF push-mode envelopes.

The client reads an EnumerateResponse once per host with a namespace-aware XML parser, and each
Ack's RelatesTo with one regular expression (hot path). The collector reads the header fields it
needs with regular expressions on the decoded text, prefix-agnostic, and takes the events out of
CDATA sections; big bodies are read off the event loop by the caller.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from . import ns

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"^P(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?$")


class EnvelopeError(ValueError):
    """An envelope that is not what the protocol says (one line for the user)."""


def decode(body: bytes) -> str:
    """UTF-16 with or without BOM (LE when none, as OpenWEC assumes); UTF-8 when it starts with `<`."""
    if body[:2] == ns.BOM:
        return body[2:].decode("utf-16-le")
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be")
    if body[:1] == b"<":
        return body.decode("utf-8")
    return body.decode("utf-16-le")


def duration_s(text: str) -> float:
    """`PT3600.000S` -> 3600.0 (xs:duration in days, hours, minutes and seconds, as WEF writes them)."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        raise EnvelopeError(f"not a duration: {text!r}")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def _connection_retry(el: ET.Element | None) -> tuple[int, float]:
    """w:ConnectionRetry: (Total, interval in seconds); when absent, the 5 x 60 s Microsoft's and OpenWEC's subscriptions carry."""
    if el is None:
        return 5, 60.0
    total = el.get("Total", "5").strip()
    if not total.isdigit():
        raise EnvelopeError(f"ConnectionRetry Total is not a count: {total!r}")
    return int(total), duration_s(_text(el, "PT60S"))


@dataclass(frozen=True)
class Subscription:
    """One subscription of an EnumerateResponse, as a forwarder keeps it."""

    notify_to: str
    identifier: str
    version: str
    reference: str  # the ReferenceParameters (or ReferenceProperties), re-serialised as header blocks
    heartbeat_s: float
    max_time_s: float
    max_envelope: int
    content_encoding: str
    bookmark: str
    retry_total: int = 5  # w:ConnectionRetry's Total: retries of a failed delivery
    retry_s: float = 60.0  # w:ConnectionRetry's interval
    channels: tuple[str, ...] = field(default=())
    content_format: str = "Raw"  # the Subscribe's ContentFormat option: Raw, or RenderedText (RenderingInfo)
    # Which element carried the reference: OpenWEC writes ReferenceParameters, Microsoft's WEC
    # ReferenceProperties (WS-Addressing 2004/08 has both; a client copies either as header blocks).
    reference_element: str = "ReferenceParameters"
    max_elements: int | None = None  # w:MaxElements: events per delivery at most; None: not offered


def _q(prefix: str, local: str) -> str:
    return f"{{{ns.PREFIXES[prefix]}}}{local}"


def _text(el: ET.Element | None, default: str = "") -> str:
    return (el.text or "").strip() if el is not None and el.text is not None else default


_XML_NS = "http://www.w3.org/XML/1998/namespace"


def _split(tag: str) -> tuple[str, str]:
    """`{uri}local` -> (uri, local); ("", tag) without a namespace."""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def _block(el: ET.Element, prefixes: dict[str, str], scope: dict[str, str]) -> str:
    """One element as the collector wrote it: its prefix, attributes, text and children, declaring
    on itself every namespace it uses that is not declared around it (as Windows copies a
    reference into its headers: `<e:Identifier xmlns:e="...">`)."""
    scope = dict(scope)
    decls: list[str] = []

    def name(tag: str, attribute: bool = False) -> str:
        uri, local = _split(tag)
        if not uri:
            if not attribute and scope.get("", "") != "":  # back to no namespace under a default one
                scope[""] = ""
                decls.append(' xmlns=""')
            return local
        if uri == _XML_NS:
            return f"xml:{local}"
        prefix = prefixes.get(uri, "")
        if attribute and not prefix:  # an attribute in a namespace needs a prefix
            prefix = f"ns{len(scope)}"
        if scope.get(prefix) != uri:
            scope[prefix] = uri
            decls.append(f' xmlns:{prefix}="{uri}"' if prefix else f' xmlns="{uri}"')
        return f"{prefix}:{local}" if prefix else local

    tag = name(el.tag)
    attrs = "".join(f" {name(k, True)}={quoteattr(v)}" for k, v in el.attrib.items())
    inner = escape(el.text or "") + "".join(_block(c, prefixes, scope) + escape(c.tail or "") for c in el)
    head = f"<{tag}{''.join(decls)}{attrs}"
    return f"{head}>{inner}</{tag}>" if inner else f"{head}/>"


def _reference(params: ET.Element, prefixes: dict[str, str]) -> tuple[str, str, str]:
    """The reference's children as header blocks, and its Identifier and Version (empty if none)."""
    parts, identifier, version = [], "", ""
    for child in params:
        local = _split(child.tag)[1]
        if local == "Identifier":
            identifier = (child.text or "").strip()
        elif local == "Version":
            version = (child.text or "").strip()
        parts.append(_block(child, prefixes, {}))
    return "".join(parts), identifier, version


def _parse(text: str) -> tuple[ET.Element, dict[str, str]]:
    """The document, and the prefix each namespace URI was declared with (the last declaration wins;
    a reference copied into headers keeps the collector's prefixes)."""
    prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    for event, item in ET.iterparse(io.StringIO(text), events=("start-ns", "start")):
        if event == "start-ns":
            prefix, uri = item
            prefixes[uri] = prefix
        elif root is None:
            root = item
    assert root is not None
    return root, prefixes


def _content_formats(root: ET.Element) -> dict[int, str]:
    """The ContentFormat option of each Subscribe (by id), from the OptionSet in the header of the
    envelope that holds it; `Raw` when the option is absent (MS-WSMV's default)."""
    found: dict[int, str] = {}
    options = f"{_q('s', 'Header')}/{_q('w', 'OptionSet')}/{_q('w', 'Option')}"
    for env in root.iter(_q("s", "Envelope")):
        fmt = next((_text(o) for o in env.iterfind(options) if o.get("Name") == "ContentFormat" and _text(o)), "Raw")
        for subscribe in env.iterfind(f"{_q('s', 'Body')}/{_q('e', 'Subscribe')}"):
            found[id(subscribe)] = fmt
    return found


def subscriptions(body: bytes) -> list[Subscription]:
    """Every Subscribe of an EnumerateResponse (empty when the collector has none for this host)."""
    try:
        root, prefixes = _parse(decode(body))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"EnumerateResponse is not XML: {exc}") from None
    action = _text(root.find(f"{_q('s', 'Header')}/{_q('a', 'Action')}"))
    if action != ns.ACTION_ENUMERATE_RESPONSE:
        raise EnvelopeError(f"expected an EnumerateResponse, got action {action or '(none)'!r}")
    found = []
    formats = _content_formats(root)
    # Microsoft's WEC keeps the subscription's Version beside its envelope (MS-WSMV SubscriptionType),
    # not in the reference: read it there when the reference has none.
    outer_version: dict[int, str] = {}
    for item in root.iter():
        if _split(item.tag)[1] == "Subscription":
            mark = next((c for c in item if _split(c.tag)[1] == "Version"), None)
            for subscribe in item.iter(_q("e", "Subscribe")):
                outer_version[id(subscribe)] = _text(mark)
    for subscribe in root.iter(_q("e", "Subscribe")):
        delivery = subscribe.find(_q("e", "Delivery"))
        if delivery is None:
            raise EnvelopeError("a Subscribe without Delivery")
        notify = delivery.find(_q("e", "NotifyTo"))
        address = _text(notify.find(_q("a", "Address")) if notify is not None else None)
        params = None
        for kind in ("ReferenceParameters", "ReferenceProperties"):
            params = notify.find(_q("a", kind)) if notify is not None else None
            if params is not None:
                break
        if not address or params is None:
            raise EnvelopeError("a Subscribe without NotifyTo Address and ReferenceParameters or ReferenceProperties")
        reference, identifier, version = _reference(params, prefixes)
        version = version or outer_version.get(id(subscribe), "")
        retry_total, retry_s = _connection_retry(delivery.find(_q("w", "ConnectionRetry")))
        channels = tuple(
            sel.get("Path", "") for sel in subscribe.iter() if sel.tag.rsplit("}", 1)[-1] == "Select"
        )
        found.append(Subscription(
            notify_to=address, identifier=identifier, version=version, reference=reference,
            heartbeat_s=duration_s(_text(delivery.find(_q("w", "Heartbeats")), "PT3600S")),
            max_time_s=duration_s(_text(delivery.find(_q("w", "MaxTime")), "PT30S")),
            max_envelope=int(_text(delivery.find(_q("w", "MaxEnvelopeSize")), str(ns.DEFAULT_MAX_ENVELOPE))),
            content_encoding=_text(delivery.find(_q("w", "ContentEncoding")), "UTF-16"),
            bookmark=_bookmark(subscribe.find(_q("w", "Bookmark"))),
            retry_total=retry_total, retry_s=retry_s,
            channels=channels, content_format=formats.get(id(subscribe), "Raw"), reference_element=kind,
            max_elements=_max_elements(delivery),
        ))
    return found


def _bookmark(el: ET.Element | None) -> str:
    """A w:Bookmark as text: a URI (`.../bookmark/earliest`), or its BookmarkList as XML."""
    if el is None:
        return ""
    return "".join(ET.tostring(child, encoding="unicode") for child in el) or _text(el)


def _max_elements(delivery: ET.Element) -> int | None:
    """The Subscribe's optional w:MaxElements, a positive integer when given."""
    text = _text(delivery.find(_q("w", "MaxElements")))
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise EnvelopeError(f"a Subscribe whose MaxElements is not a positive integer: {text!r}")
    return int(text)


_RECORD_ID = re.compile(r"<(?:[\w.-]+:)?Bookmark\s[^>]*?RecordId=\"(\d+)\"")


def bookmark_record(bookmark: str) -> int | None:
    """The highest RecordId of a Subscribe's w:Bookmark (a BookmarkList); None for none, or the
    `earliest` URI a collector sends a client it has no bookmark for."""
    ids = [int(m) for m in _RECORD_ID.findall(bookmark)]
    return max(ids) if ids else None


_RELATES_TO = re.compile(r"<(?:[\w.-]+:)?RelatesTo[^>]*>\s*([^<]*?)\s*</")
_ACTION = re.compile(r"<(?:[\w.-]+:)?Action[^>]*>\s*([^<]*?)\s*</")


def ack_relates_to(body: bytes) -> tuple[str, str]:
    """(Action, RelatesTo) of the collector's answer; empty strings for what is missing."""
    text = decode(body)
    a = _ACTION.search(text)
    r = _RELATES_TO.search(text)
    return (a.group(1) if a else "", r.group(1) if r else "")


# --- collector side ------------------------------------------------------------------------------

_HEADER_END = re.compile(r"</(?:[\w.-]+:)?Header>")
_FIELDS = {
    name: re.compile(r"<(?:[\w.-]+:)?" + name + r"(?:\s[^>]*)?>\s*([^<]*?)\s*</")
    for name in ("Action", "MessageID", "MachineID", "Identifier", "Version")
}
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)


@dataclass(frozen=True)
class Request:
    """What the collector needs from a client envelope."""

    action: str
    message_id: str
    machine_id: str
    identifier: str
    version: str
    events: list[str]


def request(text: str, *, with_events: bool) -> Request:
    """Header fields (first of each, header only) and, when asked, the events in CDATA."""
    end = _HEADER_END.search(text)
    if end is None:
        raise EnvelopeError("no SOAP Header")
    header = text[: end.start()]
    values = {}
    for name, pattern in _FIELDS.items():
        m = pattern.search(header)
        values[name] = m.group(1) if m else ""
    events = _CDATA.findall(text, end.end()) if with_events else []
    return Request(values["Action"], values["MessageID"], values["MachineID"], values["Identifier"],
                   values["Version"], events)
