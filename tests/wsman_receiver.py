"""A small WEF collector on 127.0.0.1 for the subscription and refresh tests: it offers the options a
test sets (MaxElements, MaxTime), reads every message with a namespace-aware XML parser, and keeps
what each host did at the server side (Enumerates, Ends and their connections, events per delivery,
each event's host and EventRecordID, the last bookmark), so the tests count at the server."""

from __future__ import annotations

import asyncio
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from wefperf.wsman import envelope, ns, parse

IDENT = "0C98CAE1-EDA4-4C92-82D9-A8A20EB518D2"
_EARLIEST = "http://schemas.dmtf.org/wbem/wsman/1/wsman/bookmark/earliest"
_EV = "{http://schemas.microsoft.com/win/2004/08/events/event}"


def _q(prefix: str, local: str) -> str:
    return f"{{{ns.PREFIXES[prefix]}}}{local}"


@dataclass
class Message:
    """One request as the receiver read it."""

    peer: tuple[str, int]  # the client's address and port: one connection
    action: str
    machine: str
    operation: str
    at: float


@dataclass
class Receiver:
    """What the receiver offers, and what it saw."""

    max_elements: int | None = None
    max_time_s: float = 30.0
    stale_bookmark: bool = False  # answer every Enumerate with the host's first bookmark, not its last
    later_max_elements: int | None = None  # offered from a host's second Enumerate on (a refresh) when set
    heartbeat_s: float = 3600.0
    later_heartbeat_s: float | None = None  # likewise, the Heartbeats interval
    end_delay_s: float = 0.0  # how long the answer to an End takes
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)  # events per Events envelope
    delivered: list[tuple[str, float, int]] = field(default_factory=list)  # (machine, when, events) of each
    events: Counter[tuple[str, int]] = field(default_factory=Counter)  # (Computer, EventRecordID) -> copies
    bookmarks: dict[str, list[str]] = field(default_factory=dict)  # machine -> bookmarks in arrival order
    heartbeats: list[tuple[str, float]] = field(default_factory=list)  # (machine, when) of each Heartbeat

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wsman/SubscriptionManager/WEC"

    def enumerates(self) -> Counter[str]:
        return Counter(m.machine for m in self.messages if m.action == ns.ACTION_ENUMERATE)

    def _subscribe(self, mid: str, machine: str) -> str:
        notify = f"http://127.0.0.1:{self.port}{ns.SUBSCRIPTIONS_PATH}{IDENT}"
        later = self.enumerates()[machine] > 1
        beat = self.later_heartbeat_s if later and self.later_heartbeat_s is not None else self.heartbeat_s
        spec = envelope.SubscriptionSpec(IDENT, "uuid:V1", notify, max_time_s=self.max_time_s, heartbeat_s=beat)
        text = envelope.enumerate_response(spec, relates_to=mid, machine=machine)
        offered = self.max_elements
        if self.later_max_elements is not None and later:
            offered = self.later_max_elements
        if offered is not None:
            text = text.replace("<w:MaxTime>", f"<w:MaxElements>{offered}</w:MaxElements><w:MaxTime>", 1)
        kept = self.bookmarks.get(machine)
        if kept:
            text = text.replace(_EARLIEST, kept[0] if self.stale_bookmark else kept[-1], 1)
        return text


def _read(req: web.Request, body: bytes) -> tuple[ET.Element, Message]:
    root = ET.fromstring(parse.decode(body))
    header = root.find(_q("s", "Header"))
    assert header is not None

    def text(el: ET.Element | None) -> str:
        return (el.text or "").strip() if el is not None else ""

    peer = req.transport.get_extra_info("peername") if req.transport is not None else ("", 0)
    loop = asyncio.get_running_loop()
    msg = Message((peer[0], peer[1]), text(header.find(_q("a", "Action"))), text(header.find(_q("m", "MachineID"))),
                  text(header.find(_q("p", "OperationID"))), loop.time())
    return root, msg


def _app(rx: Receiver) -> web.Application:
    async def manager(req: web.Request) -> web.Response:
        root, msg = _read(req, await req.read())
        rx.messages.append(msg)
        if msg.action == ns.ACTION_END:
            await asyncio.sleep(rx.end_delay_s)
            return web.Response(status=204)  # as Microsoft's collector answers End
        mid = (root.findtext(f"{_q('s', 'Header')}/{_q('a', 'MessageID')}") or "").strip()
        return web.Response(body=envelope.encode(rx._subscribe(mid, msg.machine)),
                            headers={"Content-Type": ns.CONTENT_TYPE})

    async def subscription(req: web.Request) -> web.Response:
        root, msg = _read(req, await req.read())
        rx.messages.append(msg)
        if msg.action == ns.ACTION_HEARTBEAT:
            rx.heartbeats.append((msg.machine, msg.at))
        if msg.action == ns.ACTION_EVENTS:
            events = root.findall(f"{_q('s', 'Body')}/{_q('w', 'Events')}/{_q('w', 'Event')}")
            rx.deliveries.append(len(events))
            rx.delivered.append((msg.machine, msg.at, len(events)))
            for ev in events:
                event = ET.fromstring(ev.text or "")
                rx.events[(event.findtext(f"{_EV}System/{_EV}Computer") or "",
                           int(event.findtext(f"{_EV}System/{_EV}EventRecordID") or -1))] += 1
            mark = root.find(f"{_q('s', 'Header')}/{_q('w', 'Bookmark')}")
            if mark is not None and len(mark):
                rx.bookmarks.setdefault(msg.machine, []).append(ET.tostring(mark[0], encoding="unicode"))
        mid = (root.findtext(f"{_q('s', 'Header')}/{_q('a', 'MessageID')}") or "").strip()
        return web.Response(body=envelope.encode(envelope.ack(mid)), headers={"Content-Type": ns.CONTENT_TYPE})

    async def health(_req: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def stats(_req: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/stats/throughput", stats)
    app.router.add_post("/wsman/SubscriptionManager/WEC", manager)
    app.router.add_post(ns.SUBSCRIPTIONS_PATH + "{ident}", subscription)
    return app


@contextmanager
def receiving(rx: Receiver) -> Iterator[Receiver]:
    """The receiver served from a thread of its own until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(_app(rx))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        rx.port = runner.addresses[0][1]
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield rx
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
