"""Reading WEF push-mode envelopes.

The client reads an EnumerateResponse once per host with a namespace-aware XML parser, and each
Ack's RelatesTo with one regular expression (hot path). The collector reads the header fields it
needs with regular expressions on the decoded text, prefix-agnostic, and takes the events out of
CDATA sections; big bodies are read off the event loop by the caller.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from . import ns

_DURATION = re.compile(r"^P(?:T)?(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


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
    """`PT3600.000S` -> 3600.0 (the xs:duration forms WEF uses: hours, minutes, seconds)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise EnvelopeError(f"not a duration: {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


@dataclass(frozen=True)
class Subscription:
    """One subscription of an EnumerateResponse, as a forwarder keeps it."""

    notify_to: str
    identifier: str
    version: str
    reference: str  # the ReferenceParameters, re-serialised as header blocks
    heartbeat_s: float
    max_time_s: float
    max_envelope: int
    content_encoding: str
    bookmark: str
    retry_total: int = 5
    retry_s: float = 60.0
    channels: tuple[str, ...] = field(default=())
    max_elements: int | None = None  # w:MaxElements: events per delivery at most; None: not offered


def _q(prefix: str, local: str) -> str:
    return f"{{{ns.PREFIXES[prefix]}}}{local}"


def _text(el: ET.Element | None, default: str = "") -> str:
    return (el.text or "").strip() if el is not None and el.text is not None else default


def _reference(params: ET.Element) -> tuple[str, str, str]:
    parts, identifier, version = [], "", ""
    for child in params:
        uri, _, local = child.tag[1:].partition("}") if child.tag.startswith("{") else ("", "", child.tag)
        value = (child.text or "").strip()
        if local == "Identifier":
            identifier = value
        elif local == "Version":
            version = value
        xmlns = f' xmlns="{uri}"' if uri else ""
        parts.append(f"<{local}{xmlns}>{_escape(value)}</{local}>")
    return "".join(parts), identifier, version


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def subscriptions(body: bytes) -> list[Subscription]:
    """Every Subscribe of an EnumerateResponse (empty when the collector has none for this host)."""
    try:
        root = ET.fromstring(decode(body))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"EnumerateResponse is not XML: {exc}") from None
    action = _text(root.find(f"{_q('s', 'Header')}/{_q('a', 'Action')}"))
    if action != ns.ACTION_ENUMERATE_RESPONSE:
        raise EnvelopeError(f"expected an EnumerateResponse, got action {action or '(none)'!r}")
    found = []
    for subscribe in root.iter(_q("e", "Subscribe")):
        delivery = subscribe.find(_q("e", "Delivery"))
        if delivery is None:
            raise EnvelopeError("a Subscribe without Delivery")
        notify = delivery.find(_q("e", "NotifyTo"))
        address = _text(notify.find(_q("a", "Address")) if notify is not None else None)
        params = notify.find(_q("a", "ReferenceParameters")) if notify is not None else None
        if not address or params is None:
            raise EnvelopeError("a Subscribe without NotifyTo Address and ReferenceParameters")
        reference, identifier, version = _reference(params)
        retry = delivery.find(_q("w", "ConnectionRetry"))
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
            retry_total=int(retry.get("Total", "5")) if retry is not None else 5,
            retry_s=duration_s(_text(retry, "PT60S")) if retry is not None else 60.0,
            channels=channels,
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
