"""A small WEF collector on 127.0.0.1 that answers as Microsoft's WEC or as OpenWEC does.

Its EnumerateResponse follows the structure of the captures in OpenWEC's doc/protocol.md:
Microsoft's carries the subscription's `m:Version` beside the Subscribe envelope and a NotifyTo
with `a:ReferenceProperties` holding only `e:Identifier` (plus EndTo, a c:Policy and an OptionSet);
OpenWEC's a NotifyTo with `a:ReferenceParameters` holding `e:Identifier`, `Version` (no namespace)
and `Revision`. Every Events or Heartbeat message is read with a real XML parser and its header
blocks compared with the reference offered; what differs is kept in `mismatches`.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from threaded_app import ThreadedApp
from wefperf.wsman import envelope, ns

IDENT = "219C5353-5F3D-4CD7-A644-F6B69E57C1C1"
VERSION = "uuid:0F5E1B7A-8C0D-4E2B-9A61-3D7C5B2E4F10"
REVISION = "rev-7"
_SUB_NS = envelope.SUBSCRIPTION_NS
_POLICY_NS = "http://schemas.xmlsoap.org/ws/2002/12/policy"
_AUTH_NS = "http://schemas.microsoft.com/wbem/wsman/1/authentication"
_MACHINE = re.compile(r"<(?:\w+:)?MachineID[^>]*>([^<]+)<")


def _q(prefix: str, local: str) -> str:
    return f"{{{ns.PREFIXES[prefix]}}}{local}"


@dataclass
class WecReceiver(ThreadedApp):
    """`shape`: "microsoft" or "openwec". `enumerate_ok`: Enumerates answered with a subscription per
    host (then 503); None: all of them. `events_status`: what Events messages get (200: an Ack)."""

    shape: str = "microsoft"
    retry_total: int = 5
    retry: str = "PT60.0S"
    enumerate_ok: int | None = None
    events_status: int = 200
    port: int = 0
    enumerates: Counter[str] = field(default_factory=Counter)  # per MachineID
    enumerate_times: dict[str, list[float]] = field(default_factory=dict)  # per MachineID, time.monotonic()
    events_times: dict[str, list[float]] = field(default_factory=dict)  # Events posts per MachineID
    events_in: dict[str, int] = field(default_factory=dict)  # events per distinct MessageID
    events_posts: int = 0
    heartbeats: int = 0
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    raw_identifiers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._init_server()
        self._lock = threading.Lock()

    @property
    def manager_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wsman/SubscriptionManager/WEC"

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats/throughput", self._stats)
        app.router.add_post("/wsman/SubscriptionManager/WEC", self._manager)
        app.router.add_post("/wsman/subscriptions/{tail:.*}", self._subscription)

    async def _health(self, _req: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _stats(self, _req: web.Request) -> web.Response:
        return web.json_response([])

    # -- Enumerate ---------------------------------------------------------------------------------

    async def _manager(self, req: web.Request) -> web.Response:
        text = (await req.read())[2:].decode("utf-16-le")
        root = ET.fromstring(text)
        header = root.find(_q("s", "Header"))
        assert header is not None
        mid = header.findtext(_q("a", "MessageID")) or ""
        machine = header.findtext(_q("m", "MachineID")) or "?"
        if header.findtext(_q("a", "Action")) == ns.ACTION_END:  # after each EnumerateResponse: Microsoft's 204
            return web.Response(status=204)
        with self._lock:
            self.enumerates[machine] += 1
            self.enumerate_times.setdefault(machine, []).append(time.monotonic())
            seen = self.enumerates[machine]
        if self.enumerate_ok is not None and seen > self.enumerate_ok:
            return web.Response(status=503, text="Service Unavailable")
        return web.Response(body=envelope.encode(self.enumerate_response(mid)),
                            content_type="application/soap+xml", charset="UTF-16")

    def notify_to(self) -> str:
        # Microsoft's collector writes the scheme in capitals and a trailing /1.
        scheme = "HTTP" if self.shape == "microsoft" else "http"
        return f"{scheme}://127.0.0.1:{self.port}/wsman/subscriptions/{IDENT}/1"

    def reference(self) -> tuple[str, str]:
        """(element name, its children as the collector writes them)."""
        if self.shape == "microsoft":
            return "ReferenceProperties", f"<e:Identifier>{IDENT}</e:Identifier>"
        return "ReferenceParameters", (f"<e:Identifier>{IDENT}</e:Identifier><Version>{VERSION}</Version>"
                                       f"<Revision>{REVISION}</Revision>")

    def expected_blocks(self) -> list[tuple[str, str]]:
        """(tag, text) of the reference's children, as a parser reads them."""
        blocks = [(_q("e", "Identifier"), IDENT)]
        if self.shape != "microsoft":
            blocks += [("Version", VERSION), ("Revision", REVISION)]
        return blocks

    def enumerate_response(self, relates_to: str) -> str:
        kind, children = self.reference()
        address = f"<a:Address>{self.notify_to()}</a:Address><a:{kind}>{children}</a:{kind}>"
        policy = (f'<c:Policy xmlns:c="{_POLICY_NS}" xmlns:auth="{_AUTH_NS}"><c:ExactlyOne><c:All>'
                  '<auth:Authentication Profile="http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/'
                  'spnego-kerberos"></auth:Authentication></c:All></c:ExactlyOne></c:Policy>')
        mode = ns.DELIVERY_EVENTS  # both collectors ask for Events mode
        delivery = (
            f'<e:Delivery Mode="{mode}"><w:Heartbeats>PT3600.000S</w:Heartbeats>'
            f"<e:NotifyTo>{address}{policy}</e:NotifyTo>"
            f'<w:ConnectionRetry Total="{self.retry_total}">{self.retry}</w:ConnectionRetry>'
            "<w:MaxTime>PT30.000S</w:MaxTime><w:MaxEnvelopeSize Policy=\"Notify\">512000</w:MaxEnvelopeSize>"
            '<w:Locale xml:lang="en-US" s:mustUnderstand="false" />'
            '<p:DataLocale xml:lang="en-US" s:mustUnderstand="false" />'
            "<w:ContentEncoding>UTF-16</w:ContentEncoding></e:Delivery>"
        )
        end_to = f"<e:EndTo>{address}</e:EndTo>" if self.shape == "microsoft" else ""
        subscribe = (
            f"<e:Subscribe>{end_to}{delivery}"
            '<w:Filter Dialect="http://schemas.microsoft.com/win/2004/08/events/eventquery"><QueryList>'
            '<Query Id="0"><Select Path="Security">*</Select></Query></QueryList></w:Filter>'
            "<w:Bookmark>http://schemas.dmtf.org/wbem/wsman/1/wsman/bookmark/earliest</w:Bookmark>"
            "<w:SendBookmarks/></e:Subscribe>"
        )
        decl = " ".join(f'xmlns:{p}="{u}"' for p, u in ns.PREFIXES.items() if p != "m")
        inner_header = (
            f"<a:To>{ns.ANONYMOUS}</a:To>"
            f'<w:ResourceURI s:mustUnderstand="true">{ns.RESOURCE_EVENTLOG}</w:ResourceURI>'
            f'<a:Action s:mustUnderstand="true">{ns.ACTION_SUBSCRIBE}</a:Action>'
            f"<a:MessageID>{envelope.message_id()}</a:MessageID>"
            '<w:OptionSet xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<w:Option Name="SubscriptionName">wefperf-test</w:Option>'
            '<w:Option Name="ContentFormat">RenderedText</w:Option></w:OptionSet>'
        )
        item = (f'<m:Subscription xmlns:m="{_SUB_NS}"><m:Version>{VERSION}</m:Version>'
                f"<s:Envelope {decl}><s:Header>{inner_header}</s:Header><s:Body>{subscribe}</s:Body></s:Envelope>"
                "</m:Subscription>")
        return (
            f'<s:Envelope xml:lang="en-US" {decl}><s:Header>'
            f"<a:Action>{ns.ACTION_ENUMERATE_RESPONSE}</a:Action><a:MessageID>{envelope.message_id()}</a:MessageID>"
            f"<a:To>{ns.ANONYMOUS}</a:To><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header>"
            f"<s:Body><n:EnumerateResponse><n:EnumerationContext></n:EnumerationContext><w:Items>{item}"
            "</w:Items><w:EndOfSequence/></n:EnumerateResponse></s:Body></s:Envelope>"
        )

    # -- Events and Heartbeats -----------------------------------------------------------------------

    async def _subscription(self, req: web.Request) -> web.Response:
        text = (await req.read())[2:].decode("utf-16-le")
        root = ET.fromstring(text)
        header = root.find(_q("s", "Header"))
        assert header is not None
        action = header.findtext(_q("a", "Action")) or ""
        mid = header.findtext(_q("a", "MessageID")) or ""
        machine = header.findtext(_q("m", "MachineID")) or "?"
        events = root.findall(f"{_q('s', 'Body')}/{_q('w', 'Events')}/{_q('w', 'Event')}")
        with self._lock:
            if action == ns.ACTION_HEARTBEAT:
                self.heartbeats += 1
            else:
                self.events_posts += 1
                self.events_times.setdefault(machine, []).append(time.monotonic())
                self.events_in[mid] = len(events)
            self._check(header, text)
        if self.events_status != 200:
            return web.Response(status=self.events_status, text="Service Unavailable")
        return web.Response(body=envelope.encode(envelope.ack(mid)), content_type="application/soap+xml",
                            charset="UTF-16")

    def _check(self, header: ET.Element, text: str) -> None:
        """The reference's children came back as header blocks, each the same element with the same
        content, and nothing the collector did not offer (no Version Microsoft's never sent)."""
        self.checked += 1
        expected = self.expected_blocks()
        names = {tag for tag, _ in expected} | {_q("e", "Identifier"), "Version", f"{{{_SUB_NS}}}Version",
                                                 "Revision"}
        got = [(el.tag, (el.text or ""), dict(el.attrib), len(el)) for el in header if el.tag in names]
        want = [(tag, value, {}, 0) for tag, value in expected]
        if got != want:
            self.mismatches.append(f"header blocks {got} != {want}")
        found = re.search(r"<(\w+):Identifier\b([^>]*)>", text)
        self.raw_identifiers.append(found.group(0) if found else "")
