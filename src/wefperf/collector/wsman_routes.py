"""`wefperf collector --wsman`: WEF push-mode routes beside the batch ones (docs/wsman.md).

Any POST outside /wsman/subscriptions/ that is not a batch route is taken as an Enumerate (as
OpenWEC does); the answer holds one subscription whose NotifyTo is /wsman/subscriptions/<GUID>
on the address the client used. Events there are decoded from UTF-16, taken out of CDATA and
handed to the same `Collector.ingest` as a batch body, so counts and parquet rows are the same.
Status codes follow OpenWEC: a missing Identifier or Version is 400, an unknown Identifier 404,
an envelope over MaxEnvelopeSize 400. Any Version is accepted, as OpenWEC accepts it.
The Subscribe is shaped as OpenWEC's (wsman/envelope.py) and offers the options it was started with
(MaxElements, MaxTime, ContentFormat, ConnectionRetry, Heartbeats: wsman/options.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from ..wsman import envelope, ns
from ..wsman.certs import common_name
from ..wsman.options import SubscriptionOptions
from ..wsman.parse import EnvelopeError, Request, decode, request
from .server import COLLECTOR, PARSE_INLINE_BYTES

log = logging.getLogger("wefperf.collector")
_BATCH_HEAD = b"<Envelope><Body><Events>\n"
_BATCH_TAIL = b"</Events></Body></Envelope>\n"


@dataclass
class WsmanState:
    """The one subscription every host gets, and what the routes saw."""

    identifier: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    version: str = field(default_factory=lambda: f"uuid:{str(uuid.uuid4()).upper()}")
    options: SubscriptionOptions = field(default_factory=SubscriptionOptions)
    thumbprint: str = ""  # SHA-1 of the client CA in TLS mode: the Subscribe's Policy names it
    enumerates: int = 0
    events_messages: int = 0
    heartbeats: int = 0
    refused: int = 0


WSMAN = web.AppKey("wsman", WsmanState)


def _reply(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=envelope.encode(text), headers={"Content-Type": ns.CONTENT_TYPE})


def _refuse(state: WsmanState, status: int, why: str) -> web.Response:
    state.refused += 1
    return web.Response(status=status, text=why)


def _source_host(req: web.Request, machine_id: str) -> str:
    """The certificate's CN over TLS, else the MachineID the envelope names."""
    transport = req.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is not None:
        cn = common_name(ssl_object.getpeercert())
        if cn:
            return cn
    return machine_id or (req.remote or "")


def _read(body: bytes, with_events: bool) -> Request:
    return request(decode(body), with_events=with_events)


async def enumerate_(req: web.Request) -> web.Response:
    state = req.app[WSMAN]
    try:
        msg = _read(await req.read(), False)
    except (EnvelopeError, UnicodeDecodeError) as exc:
        return _refuse(state, 400, f"Bad Request: {exc}")
    if msg.action == ns.ACTION_END:
        return _reply(envelope.ack(msg.message_id))
    if msg.action != ns.ACTION_ENUMERATE:
        return _refuse(state, 400, f"Bad Request: expected Enumerate, got {msg.action or 'no Action'}")
    state.enumerates += 1
    notify = f"{req.scheme}://{req.host}{ns.SUBSCRIPTIONS_PATH}{state.identifier}"
    o = state.options
    spec = envelope.SubscriptionSpec(
        state.identifier, state.version, notify, heartbeat_s=o.heartbeat_s, max_time_s=o.max_time_s,
        max_envelope=o.max_envelope, retry_total=o.retry_total, retry_s=o.retry_s, max_elements=o.max_elements,
        content_format=o.content_format, thumbprint=state.thumbprint,
    )
    return _reply(envelope.enumerate_response(spec, relates_to=msg.message_id, machine=msg.machine_id))


async def subscription(req: web.Request) -> web.Response:
    state = req.app[WSMAN]
    body = await req.read()
    limit = state.options.max_envelope
    if len(body) > limit:
        return _refuse(state, 400, f"Bad Request: envelope of {len(body)} bytes over MaxEnvelopeSize {limit}")
    try:
        if len(body) > PARSE_INLINE_BYTES:
            msg = await asyncio.to_thread(_read, body, True)
        else:
            msg = _read(body, True)
    except (EnvelopeError, UnicodeDecodeError) as exc:
        return _refuse(state, 400, f"Bad Request: {exc}")
    if not msg.identifier or not msg.version:
        return _refuse(state, 400, "Bad Request: no Identifier or Version in the header")
    if msg.identifier != state.identifier or req.match_info.get("ident", msg.identifier) != state.identifier:
        return _refuse(state, 404, f"Not Found: unknown subscription {msg.identifier}")
    if msg.action == ns.ACTION_HEARTBEAT:
        state.heartbeats += 1
        return _reply(envelope.ack(msg.message_id))
    if msg.action != ns.ACTION_EVENTS:
        return _refuse(state, 400, f"Bad Request: unexpected action {msg.action or '(none)'}")
    state.events_messages += 1
    if msg.events:
        batch = b"".join([_BATCH_HEAD, "".join(msg.events).encode(), _BATCH_TAIL])
        await req.app[COLLECTOR].ingest(batch, _source_host(req, msg.machine_id))
    return _reply(envelope.ack(msg.message_id))


def add_routes(app: web.Application, state: WsmanState) -> None:
    """After the batch routes: aiohttp matches in the order routes were added."""
    app[WSMAN] = state
    app.router.add_post(ns.SUBSCRIPTIONS_PATH + "{ident}", subscription)
    app.router.add_post("/{tail:.*}", enumerate_)
