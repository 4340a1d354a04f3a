"""The events batch wire format of docs/contract.md, and an HTTP/1.1 request head for raw senders."""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape

from .marker import BATCH_PLACEHOLDER, MARKER_FIELD
from .templates import PROVIDER, PROVIDER_GUID, EventTemplate

CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"

BATCH_HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<Envelope><Body><Events>\n'
BATCH_TAIL = b"</Events></Body></Envelope>\n"
# Between two events of a batch body (and after the last): one per line, as the contract's example
# lays them out. Not part of an event: an event's text ends at `</Event>`, as Windows' does.
EVENT_SEPARATOR = b"\n"


def event_xml(
    template: EventTemplate,
    values: dict[str, str],
    *,
    run_id: str,
    index: int,
    record_id: int,
    computer: str,
    time_created: datetime,
) -> bytes:
    """One <Event>, ending at `</Event>`, with the batch number left as a placeholder for the pool to patch."""
    data = "".join(f'<Data Name="{name}">{escape(values[name])}</Data>' for name in template.fields)
    stamp = time_created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_created.microsecond // 1000:03d}Z"
    head = (
        f'<Event xmlns="{EVENT_NS}"><System>'
        f'<Provider Name="{PROVIDER}" Guid="{PROVIDER_GUID}"/>'
        f"<EventID>{template.event_id}</EventID><Version>{template.version}</Version><Level>0</Level>"
        f"<Task>{template.task}</Task><Opcode>0</Opcode><Keywords>{template.keywords}</Keywords>"
        f'<TimeCreated SystemTime="{stamp}"/><EventRecordID>{record_id}</EventRecordID>'
        f'<Correlation/><Execution ProcessID="{692 + index % 5000}" ThreadID="{1000 + index % 7000}"/>'
        f"<Channel>Security</Channel><Computer>{computer}</Computer><Security/></System>"
        f'<EventData>{data}<Data Name="{MARKER_FIELD}">{run_id}:'
    ).encode()
    return head + BATCH_PLACEHOLDER + f":{index:05d}</Data></EventData></Event>".encode()


def request_head(host: str, path: str, content_length: int) -> bytes:
    """A keep-alive POST head; the body follows it on the wire unchanged."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wefperf\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {content_length}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
