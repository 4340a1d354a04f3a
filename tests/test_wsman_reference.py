"""Issue 20 §1: a subscription's reference comes back as Windows sends it, whichever element held it.

Microsoft's WEC answers the Enumerate with `a:ReferenceProperties` (only `e:Identifier`; the
Version is the `m:Subscription`'s), OpenWEC with `a:ReferenceParameters` (`e:Identifier`,
`Version` and `Revision` without a namespace). A host copies the children as header blocks of
every Events and Heartbeat message, element for element, prefix included.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wefperf
from wec_receiver import IDENT, REVISION, VERSION, WecReceiver
from wefperf.wsman import envelope, ns, parse


@pytest.fixture(params=["microsoft", "openwec"])
def receiver(request: pytest.FixtureRequest) -> Iterator[WecReceiver]:
    r = WecReceiver(shape=request.param).start()
    yield r
    r.stop()


def _subscription(r: WecReceiver) -> parse.Subscription:
    subs = parse.subscriptions(envelope.encode(r.enumerate_response("uuid:R")))
    assert len(subs) == 1
    return subs[0]


def test_either_reference_element_is_read_with_its_identifier_and_version(receiver: WecReceiver) -> None:
    sub = _subscription(receiver)
    kind, _ = receiver.reference()
    assert sub.reference_element == kind
    assert sub.notify_to == receiver.notify_to() and sub.identifier == IDENT
    # Microsoft's Version is the m:Subscription's; OpenWEC's is in the reference too (the same here)
    assert sub.version == VERSION
    assert (sub.retry_total, sub.retry_s) == (5, 60.0)


def test_the_reference_is_copied_as_the_collector_wrote_it(receiver: WecReceiver) -> None:
    sub = _subscription(receiver)
    if receiver.shape == "microsoft":
        # as Windows writes it back (OpenWEC's capture of a Heartbeat): its prefix, declared on itself
        assert sub.reference == f'<e:Identifier xmlns:e="{ns.EVENTING}">{IDENT}</e:Identifier>'
    else:
        assert sub.reference == (f'<e:Identifier xmlns:e="{ns.EVENTING}">{IDENT}</e:Identifier>'
                                 f"<Version>{VERSION}</Version><Revision>{REVISION}</Revision>")
    beat = envelope.encode(envelope.heartbeat(to=sub.notify_to, machine="h", mid="uuid:M", session="uuid:S",
                                              reference=sub.reference))
    header = ET.fromstring(beat[2:].decode("utf-16-le")).find(f"{{{ns.SOAP}}}Header")
    assert header is not None
    blocks = [(el.tag, el.text) for el in header if el.tag in {f"{{{ns.EVENTING}}}Identifier", "Version", "Revision"}]
    assert blocks == receiver.expected_blocks()


def test_nested_and_attributed_reference_children_keep_their_shape() -> None:
    """What a collector puts in a reference is opaque to the client: copied whole."""
    r = WecReceiver(shape="openwec")
    text = r.enumerate_response("uuid:R").replace(
        f"<Revision>{REVISION}</Revision>",
        '<x:Key xmlns:x="urn:k" x:kind="a&amp;b"><x:Part n="1">p&lt;1</x:Part><Empty/></x:Key>')
    sub = parse.subscriptions(envelope.encode(text))[0]
    assert sub.reference.endswith('<x:Key xmlns:x="urn:k" x:kind="a&amp;b"><x:Part n="1">p&lt;1</x:Part>'
                                  "<Empty/></x:Key>")


def test_connection_retry_reads_total_and_any_iso_duration() -> None:
    r = WecReceiver(shape="openwec", retry_total=3, retry="P0DT1M30.5S")
    sub = _subscription(r)
    assert (sub.retry_total, sub.retry_s) == (3, 90.5)
    assert parse.duration_s("P1D") == 86400.0 and parse.duration_s("PT5S") == 5.0
    for bad in ("P", "PT", "5S", "PT-1S"):
        with pytest.raises(parse.EnvelopeError):
            parse.duration_s(bad)
    with pytest.raises(parse.EnvelopeError, match="ConnectionRetry Total"):
        parse.subscriptions(envelope.encode(WecReceiver(shape="openwec", retry_total=-1).enumerate_response("u")))


def test_hosts_deliver_to_either_collector_sending_the_reference_back(receiver: WecReceiver, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--protocol", "wsman", "--hosts", "3", "--no-live", "--results", str(results), "--seed", "5",
        "--target-eps", "30", "--duration-secs", "1", "--max-latency-secs", "0.3", "--processing-wait-secs", "0",
        "--wef-endpoint", receiver.manager_url, timeout=60,
    )
    data = json.loads(results.read_text())
    assert data["results"]["events_acknowledged"] > 0, done.out + done.err
    assert data["results"]["failed_batches"] == 0, done.out + done.err
    assert receiver.checked >= 3 and receiver.mismatches == []
    # the Identifier block as Windows writes it: the collector's prefix, declared on the block itself
    assert set(receiver.raw_identifiers) == {f'<e:Identifier xmlns:e="{ns.EVENTING}">'}
    assert sum(receiver.enumerates.values()) == 3 + data["wsman"]["refreshes"]
