"""Events-batch detection and the walk of logthing v0.5.0 (docs/contract.md), on bytes.

The real server reads the body with an XML pull reader; an element tree or a full XML reader per
request would cost more than the rest of our request path together. So the common case is a
bytes-level walk (`re` and `bytes.find`/`rfind`, which run in C over each event). Only what needs a
closer look is read tag by tag (`_careful_scan`): an event holding a comment or CDATA, and a body
with an `<Event>` nested in another. Inside a plain event the fast walk does not check that tags
are well formed (docs/collector.md lists this). Rows for the parquet files are built later, off the
request path (sink.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

DETECT_BYTES = 2000
BOM = b"\xef\xbb\xbf"
_MAX_EVENT_ID = 2**32 - 1
_WS = b" \t\r\n"  # XML whitespace, as the real reader trims it
_GT = ord(">")
_SLASH = ord("/")
_NAME_END = frozenset([b" ", b"\t", b"\r", b"\n", b">", b"/"])
_CLOSE_NAME_END = frozenset([b" ", b"\t", b"\r", b"\n", b">"])

# A start tag named exactly `Event`: no prefix; `<Events>`, `<EventID>`, `<EventData>` do not match.
_EVENT_OPEN = re.compile(rb"<Event[ \t\r\n/>]")
_U32_TEXT = re.compile(rb"\+?[0-9]+")  # what Rust's `str::parse::<u32>` accepts (before the range check)
# One piece of markup, for the careful scan: comment, CDATA, other `<!...>`, `<?...>`, end tag, start tag.
_MARKUP = re.compile(
    rb"<(?:(!--.*?--)|(!\[CDATA\[.*?\]\])|(![^>]*)|(\?[^>]*)|/([^>]*)|([^!?/>\"']*(?:[^>\"']|\"[^\"]*\"|'[^']*')*))>",
    re.S,
)
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "apos": "'", "quot": '"'}


def is_events_batch(body: bytes) -> bool:
    """docs/contract.md detection, as v0.5.0 codes it: the first 2,000 *bytes* of the (lossily decoded)
    body contain `<Events>` or `<Event>`, and are not a subscription (`Subscribe` and `SubscriptionId`,
    which the real server checks first)."""
    head = body[:DETECT_BYTES]
    if not head.isascii():  # invalid UTF-8 grows to U+FFFD (3 bytes) in the real server's string
        head = head.decode("utf-8", "replace").encode("utf-8")[:DETECT_BYTES]
    if b"Subscribe" in head and b"SubscriptionId" in head:
        return False
    return b"<Events>" in head or b"<Event>" in head


def type_key(provider: str, event_id: int) -> str:
    """`Provider:EventID`, or `EventID <n>` when the provider is empty."""
    return f"{provider}:{event_id}" if provider else f"EventID {event_id}"


@dataclass
class EventSlices:
    """The events of one EventID in one body: their `raw_xml` spans into the body, and their providers."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)

    def xml_bytes(self) -> int:
        return sum(self.ends) - sum(self.starts)


@dataclass
class ParsedBatch:
    """What one request carried: per-type counts and the events to store, grouped by EventID."""

    type_counts: dict[str, int]
    by_event_id: dict[int, EventSlices]
    events: int
    stopped: bool  # the walk ended early at malformed XML; the events before it still count


# --- text of the label elements ------------------------------------------------------------------


def xml_unescape(text: str) -> str | None:
    """The five predefined entities and character references, as quick-xml 0.31 resolves them; None
    where it fails (the real server then takes the text as empty)."""
    out: list[str] = []
    last = 0
    amp = text.find("&")
    while amp != -1:
        semi = text.find(";", amp + 1)
        nxt = text.find("&", amp + 1)
        if semi == -1 or (nxt != -1 and nxt < semi):
            return None
        name = text[amp + 1 : semi]
        char = _char_ref(name[1:]) if name.startswith("#") else _ENTITIES.get(name)
        if char is None:
            return None
        out += [text[last:amp], char]
        last = semi + 1
        amp = text.find("&", last)
    return "".join(out) + text[last:] if out else text


def _char_ref(digits: str) -> str | None:
    """`#x1F600` / `#65` without the `#`; None for an empty, zero, too long or invalid reference."""
    hexa = digits.startswith("x")
    body, base, limit = (digits[1:], 16, 6) if hexa else (digits, 10, 7)
    allowed = "0123456789abcdefABCDEF" if hexa else "0123456789"
    if not body or len(body) > limit or any(c not in allowed for c in body):
        return None
    code = int(body, base)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _text(raw: bytes) -> str:
    """A Text event's value: trimmed, decoded, entities resolved ("" when they do not resolve)."""
    text = raw.decode("utf-8", "replace")
    if "&" in text:
        return xml_unescape(text) or ""
    return text


def _u32(digits: bytes) -> int:
    """ASCII digits as a u32; 0 when out of range (as v0.5.0 falls back), however many digits."""
    digits = digits.lstrip(b"0")
    if len(digits) > 10:
        return 0
    value = int(digits or b"0")
    return value if value <= _MAX_EVENT_ID else 0


def event_id_of(text: str | None) -> int:
    """Rust's `parse::<u32>()` with v0.5.0's fallback: anything else (or no EventID text) is 0."""
    if text is None:
        return 0
    raw = text.encode("utf-8")
    if _U32_TEXT.fullmatch(raw) is None:
        return 0
    return _u32(raw.lstrip(b"+"))


def _last_text(body: bytes, open_tag: bytes, lo: int, hi: int) -> str | None:
    """The text of the last `open_tag` element in [lo, hi) that has any.

    The real server keeps the last Text event read under that tag; a self-closing element or one
    holding only whitespace gives no Text event, so an earlier element's text stands. (The start
    tag ends at its first `>`: a `>` inside one of its attribute values is not modelled here.)
    """
    n = len(open_tag)
    q = body.rfind(open_tag, lo, hi)
    while q != -1:
        if body[q + n : q + n + 1] in _NAME_END:
            gt = body.find(b">", q + n, hi) + 1
            if gt and body[gt - 2] != _SLASH:
                raw = body[gt : body.find(b"<", gt)].strip(_WS)
                if raw:
                    return _text(raw)
        q = body.rfind(open_tag, lo, q)
    return None


def _event_id_fast(body: bytes, inner: int, close: int) -> int:
    """EventID of a plain event; the usual `<EventID>digits</EventID>` is read without decoding."""
    q = body.rfind(b"<EventID", inner, close)
    if q != -1 and body[q + 8] == _GT:
        raw = body[q + 9 : body.find(b"<", q + 9)].strip(_WS)
        if raw.isdigit():
            return _u32(raw)
    return event_id_of(_last_text(body, b"<EventID", inner, close))


# --- where raw_xml starts and ends -------------------------------------------------------------


def _raw_start(body: bytes, start: int, floor: int) -> int:
    """The reader's position before `<Event`: after the previous markup's `>`, whitespace included.

    The real server slices from the position its reader had before reading the start tag, and the
    reader skips whitespace-only text within that same read. After non-blank text the position is
    the `<` itself. (A `>` inside such text would look like markup here: not modelled.)
    """
    w = start
    while w > floor and body[w - 1] in _WS:
        w -= 1
    if w != start and (w == floor or body[w - 1] == _GT):
        return w
    return start


def _raw_end(body: bytes, close: int) -> int:
    """The reader's position before `</Event>`: whitespace after the last markup is not included."""
    w = close
    while body[w - 1] in _WS:
        w -= 1
    return w if w != close and body[w - 1] == _GT else close


# --- finding each event and its end ----------------------------------------------------------------


class _Malformed(Exception):
    """Where the real reader would return an error and the walk stops."""


def _opaque_end(body: bytes, q: int) -> int:
    """End (after its `>`) of the comment, CDATA section, declaration or PI starting at `q`."""
    if body.startswith(b"<!--", q):
        end, width = body.find(b"-->", q + 4), 3
    elif body.startswith(b"<![CDATA[", q):
        end, width = body.find(b"]]>", q + 9), 3
    else:
        end, width = body.find(b">", q + 2), 1
    if end == -1:
        raise _Malformed
    return end + width


class _NestedEvent(Exception):
    """The fast walk cut an event at a nested `</Event>`: walk the body again, carefully."""


def _between_events(body: bytes, pos: int, start: int, careful: bool) -> int | None:
    """Check the markup between two events; where to go on from if the `<Event` at `start` lies
    inside a comment, CDATA section or PI (it is then no event), else None.

    A `</Event>` here closes no open `Event`: in the real reader that is an error. In the fast walk
    it means an event was cut at a nested `</Event>` (`_NestedEvent`).
    """
    q = body.find(b"<", pos, start)
    while q != -1:
        if body[q + 1 : q + 2] in (b"!", b"?"):
            end = _opaque_end(body, q)
            if end > start:
                return end
            q = end
        elif body.startswith(b"</Event", q) and body[q + 7 : q + 8] in _CLOSE_NAME_END:
            raise _Malformed if careful else _NestedEvent
        else:
            q += 1
        q = body.find(b"<", q, start)
    return None


@dataclass
class _Scan:
    close: int  # start of this event's `</Event>`
    after: int  # just after it
    provider: str | None
    event_id_text: str | None


def _careful_scan(body: bytes, inner: int) -> _Scan:
    """Tag by tag, as the real reader goes: names must match, nested `Event`s are skipped, comments
    and CDATA are opaque, and a label is the last Text event read while its tag was the current one
    (the real parser keeps the current tag after an end tag, so stray text counts for it too)."""
    stack: list[bytes] = [b"Event"]
    current = b"Event"
    provider: str | None = None
    event_id: str | None = None
    pos = inner
    while True:
        lt = body.find(b"<", pos)
        if lt == -1:
            raise _Malformed  # the body ends inside the event: the real reader stops at its end
        raw = body[pos:lt].strip(_WS)
        if raw and current == b"Provider":
            provider = _text(raw)
        elif raw and current == b"EventID":
            event_id = _text(raw)
        m = _MARKUP.match(body, lt)
        if m is None:
            raise _Malformed
        pos = m.end()
        if m.group(5) is not None:  # end tag
            name = m.group(5).rstrip(_WS)
            if not stack or stack.pop() != name:
                raise _Malformed
            if not stack:
                return _Scan(lt, pos, provider, event_id)
        elif m.group(6) is not None:  # start or self-closing tag
            tag = m.group(6)
            name = re.split(rb"[ \t\r\n/]", tag, maxsplit=1)[0]
            if not name:
                raise _Malformed
            if not tag.endswith(b"/"):
                stack.append(name)
                current = name


# --- the walk -------------------------------------------------------------------------------------


@dataclass
class _Found:
    """What a walk found: counts per (provider, EventID), `raw_xml` spans per EventID."""

    pairs: Counter[tuple[str, int]] = field(default_factory=Counter)
    by_id: dict[int, EventSlices] = field(default_factory=dict)
    events: int = 0
    stopped: bool = False

    def add(self, raw_start: int, raw_end: int, provider: str, event_id: int) -> None:
        self.pairs[(provider, event_id)] += 1
        slices = self.by_id.get(event_id)
        if slices is None:
            slices = self.by_id[event_id] = EventSlices()
        slices.starts.append(raw_start)
        slices.ends.append(raw_end)
        slices.providers.append(provider)
        self.events += 1


def _walk(body: bytes, floor: int, careful: bool) -> _Found:
    """Every event of the body, as the real walk takes them, until the end or malformed XML.

    Fast: an event ends at the first `</Event>` after its start tag and its labels are read with
    `rfind`; an event with `<!` inside (a comment or CDATA) is read tag by tag. A `</Event>` left
    over between two events means the fast walk cut an event at a nested one (`_NestedEvent`), or,
    when `careful` (every event read tag by tag), that the XML is malformed.
    """
    found = _Found()
    pos = floor
    search, find = _EVENT_OPEN.search, body.find
    try:
        while (m := search(body, pos)) is not None:
            start = m.start()
            if start - pos > 1 and (resume := _between_events(body, pos, start, careful)) is not None:
                pos = resume
                continue
            inner = find(b">", m.end() - 1) + 1  # (a `>` in an attribute value: not modelled)
            if not inner:
                raise _Malformed  # the start tag never ends
            if body[inner - 2] == _SLASH:  # <Event/>: v0.5.0 never takes a self-closing one
                pos = inner
                continue
            close = -1 if careful else find(b"</Event>", inner)
            # (The first `</Event>` written exactly so ends the event: a `</Event >` before it, with
            # a plain one later in the body, is not modelled.)
            if close != -1 and find(b"!", inner, close) == -1:
                pos = close + 8
                provider = _last_text(body, b"<Provider", inner, close) or ""
                event_id = _event_id_fast(body, inner, close)
            else:  # a comment or CDATA inside, no plain `</Event>` left, or careful: tag by tag
                scan = _careful_scan(body, inner)
                close, pos, provider = scan.close, scan.after, scan.provider or ""
                event_id = event_id_of(scan.event_id_text)
            raw_start = start
            if body[start - 1] in _WS:
                raw_start = _raw_start(body, start, floor)
            raw_end = close
            if body[close - 1] != _GT:
                raw_end = _raw_end(body, close)
            found.add(raw_start - floor, raw_end - floor, provider, event_id)
        _between_events(body, pos, len(body), careful)
    except _Malformed:
        found.stopped = True
    return found


def parse_batch(body: bytes) -> ParsedBatch:
    """Every unprefixed `<Event>` element, counted by `Provider:EventID` and grouped by EventID.

    Provider is the text of a `<Provider>` element (empty for Windows' self-closing
    `<Provider Name=".." Guid=".."/>`); EventID text that is not a u32 gives 0, and so does an event
    without one. `raw_xml` spans from the reader's position before `<Event` up to, not including,
    `</Event>`. With a UTF-8 BOM the real reader's positions, and so its slices, sit 3 bytes early;
    ours do the same. Malformed XML ends the walk: the events before it count.
    """
    floor = len(BOM) if body.startswith(BOM) else 0
    try:
        found = _walk(body, floor, careful=False)
    except _NestedEvent:
        found = _walk(body, floor, careful=True)
    counts: dict[str, int] = {}
    for (provider, event_id), n in found.pairs.items():
        key = type_key(provider, event_id)
        counts[key] = counts.get(key, 0) + n
    return ParsedBatch(counts, found.by_id, found.events, found.stopped)
