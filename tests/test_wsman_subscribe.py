"""The reference collector's Subscribe has OpenWEC's shape and offers the options it is given (issue 20 §7).

OpenWEC (server/src/soap.rs, logic.rs) writes each Subscription item as a `Version` and a SOAP
envelope whose header carries the Subscribe's options (SubscriptionName, ContentFormat, ...) and
whose body holds EndTo, Delivery (mode Events: Heartbeats, NotifyTo with its ReferenceParameters and
Policy, ConnectionRetry, MaxElements when set, MaxTime, MaxEnvelopeSize, ContentEncoding), Filter,
Bookmark and SendBookmarks; the ReferenceParameters' `Version` has no namespace (OpenWEC matches
only that form). Read here with a real XML parser, element by element, from a collector on 127.0.0.1.
"""

from __future__ import annotations

import json
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import wefperf
from test_collector_http import read_rows
from wefperf.wsman import envelope, ns, parse
from wefperf.wsman.options import SubscriptionOptions, parse_options

S, A, E, N, W, P = (ns.PREFIXES[p] for p in ("s", "a", "e", "n", "w", "p"))


def q(uri: str, local: str) -> str:
    return f"{{{uri}}}{local}"


def tags(el: ET.Element) -> list[str]:
    return [c.tag for c in el]


def only(el: ET.Element, uri: str, local: str) -> ET.Element:
    found = el.findall(q(uri, local))
    assert len(found) == 1, (local, tags(el))
    return found[0]


def _enumerate(base: str) -> bytes:
    url = base + ns.SUBSCRIPTION_MANAGER_PATH
    body = envelope.encode(envelope.enumerate_request(to=url, machine="WKS-1.corp.example.com",
                                                      mid="uuid:E9802257-6A7D-4C0D-BFA4-E81C7B1C447E", session="uuid:S"))
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ns.CONTENT_TYPE}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        return resp.read()


def _subscribe_envelope(answer: bytes) -> tuple[ET.Element, ET.Element]:
    """The EnumerateResponse's one Subscription item: (its Version element, its SOAP envelope)."""
    root = ET.fromstring(parse.decode(answer))
    assert root.tag == q(S, "Envelope") and tags(root) == [q(S, "Header"), q(S, "Body")]
    header = only(root, S, "Header")
    assert tags(header) == [q(A, "To"), q(A, "Action"), q(A, "MessageID"), q(P, "SequenceId"), q(A, "RelatesTo")]
    assert only(header, A, "Action").text == ns.ACTION_ENUMERATE_RESPONSE
    assert only(header, A, "RelatesTo").text == "uuid:E9802257-6A7D-4C0D-BFA4-E81C7B1C447E"
    response = only(only(root, S, "Body"), N, "EnumerateResponse")
    assert tags(response) == [q(N, "EnumerationContext"), q(W, "Items"), q(W, "EndOfSequence")]
    items = list(only(response, W, "Items"))
    assert [i.tag for i in items] == [q(ns.SUBSCRIPTION, "Subscription")]
    version, env = list(items[0])
    assert version.tag == q(ns.SUBSCRIPTION, "Version") and (version.text or "").startswith("uuid:")
    assert env.tag == q(S, "Envelope") and tags(env) == [q(S, "Header"), q(S, "Body")]
    return version, env


def _check_openwec_shape(answer: bytes, offered: SubscriptionOptions) -> parse.Subscription:
    version, env = _subscribe_envelope(answer)
    header = only(env, S, "Header")
    assert tags(header) == [
        q(A, "To"), q(W, "ResourceURI"), q(A, "ReplyTo"), q(A, "Action"), q(W, "MaxEnvelopeSize"),
        q(A, "MessageID"), q(P, "OperationID"), q(P, "SequenceId"), q(W, "OptionSet")]
    assert only(header, A, "Action").text == ns.ACTION_SUBSCRIBE
    assert only(header, W, "ResourceURI").text == ns.RESOURCE_EVENTLOG
    assert only(only(header, A, "ReplyTo"), A, "Address").text == ns.ANONYMOUS
    options = {o.get("Name"): o for o in only(header, W, "OptionSet").findall(q(W, "Option"))}
    assert options["ContentFormat"].text == offered.content_format
    assert options["SubscriptionName"].text
    for flag in ("IgnoreChannelError", "CDATA"):
        assert options[flag].get(q(ns.XSI, "nil")) == "true"
    assert "Compression" not in options  # the collector cannot read SLDC: it does not offer it

    subscribe = only(only(env, S, "Body"), E, "Subscribe")
    assert tags(subscribe) == [q(E, "EndTo"), q(E, "Delivery"), q(W, "Filter"), q(W, "Bookmark"), q(W, "SendBookmarks")]
    end_to, delivery = only(subscribe, E, "EndTo"), only(subscribe, E, "Delivery")
    assert delivery.get("Mode") == ns.ACTION_EVENTS  # Events mode, as OpenWEC and Microsoft's collector
    expected = [q(W, "Heartbeats"), q(E, "NotifyTo"), q(W, "ConnectionRetry")]
    expected += [q(W, "MaxElements")] if offered.max_elements is not None else []
    expected += [q(W, "MaxTime"), q(W, "MaxEnvelopeSize"), q(W, "ContentEncoding")]
    assert tags(delivery) == expected
    notify = only(delivery, E, "NotifyTo")
    assert tags(notify) == [q(A, "Address"), q(A, "ReferenceParameters"), q(ns.POLICY, "Policy")]
    for holder in (end_to, notify):
        params = only(holder, A, "ReferenceParameters")
        assert tags(params) == [q(E, "Identifier"), "Version"]  # `Version` in no namespace
        assert only(holder, A, "Address").text == only(notify, A, "Address").text
    assert only(delivery, W, "Heartbeats").text == f"PT{offered.heartbeat_s:.3f}S"
    retry = only(delivery, W, "ConnectionRetry")
    assert (retry.get("Total"), retry.text) == (str(offered.retry_total), f"PT{offered.retry_s:.1f}S")
    assert only(delivery, W, "MaxTime").text == f"PT{offered.max_time_s:.3f}S"
    if offered.max_elements is not None:
        assert only(delivery, W, "MaxElements").text == str(offered.max_elements)
    assert only(delivery, W, "MaxEnvelopeSize").get("Policy") == "Notify"
    assert only(delivery, W, "ContentEncoding").text == "UTF-16"
    assert only(subscribe, W, "Filter").get("Dialect") == ns.EVENT_QUERY

    sub = parse.subscriptions(answer)[0]  # and the hosts read what was offered
    assert (sub.content_format, sub.max_time_s, sub.heartbeat_s) == (
        offered.content_format, offered.max_time_s, offered.heartbeat_s)
    assert (sub.retry_total, sub.retry_s) == (offered.retry_total, offered.retry_s)
    assert "<Version>" in sub.reference  # sent back without a namespace, as OpenWEC reads it
    return sub


def test_the_collector_offers_the_options_it_is_given_in_openwec_shape(wef_target) -> None:
    t = wef_target("--wsman", "--max-elements", "20", "--max-time-secs", "5", "--content-format", "RenderedText",
                   "--connection-retry-count", "3", "--connection-retry-secs", "10", "--heartbeat-secs", "900")
    offered = SubscriptionOptions(heartbeat_s=900, max_time_s=5, max_elements=20, content_format="RenderedText",
                                  retry_total=3, retry_s=10)
    sub = _check_openwec_shape(_enumerate(t.base), offered)
    assert sub.notify_to.startswith(t.base + ns.SUBSCRIPTIONS_PATH)


def test_by_default_the_collector_offers_what_openwec_does(wef_target) -> None:
    """OpenWEC's defaults: Heartbeats 3600 s, ConnectionRetry 5 x 60 s, MaxTime 30 s, no MaxElements, Raw."""
    t = wef_target("--wsman")
    answer = _enumerate(t.base)
    _check_openwec_shape(answer, SubscriptionOptions(3600, 30, None, "Raw", 5, 60))
    assert b"M\x00a\x00x\x00E\x00l\x00e\x00m\x00e\x00n\x00t\x00s\x00" not in answer


@pytest.mark.parametrize(("flags", "says"), [
    (["--max-elements", "0"], "--max-elements: MaxElements must be 1 or more"),
    (["--max-time-secs", "0"], "--max-time-secs: MaxTime must be more than 0"),
    (["--connection-retry-count", "-1"], "--connection-retry-count/--connection-retry-secs: ConnectionRetry"),
])
def test_bad_subscription_flags_are_refused_in_one_line(flags: list[str], says: str) -> None:
    done = wefperf("collector", "--wsman", "--port", "0", *flags, timeout=30)
    assert done.code == 2, done.out + done.err
    assert says in done.err and len(done.err.strip().splitlines()) == 1, done.err


def test_embedded_subscription_setting_is_read_and_checked() -> None:
    o = parse_options("MaxElements=20, MaxTime=5,ContentFormat=RenderedText,ConnectionRetry=3x10,Heartbeats=900")
    assert o == SubscriptionOptions(900, 5, 20, "RenderedText", 3, 10)
    assert parse_options("") == SubscriptionOptions()
    assert o.collector_args()[-2:] == ["--max-elements", "20"]
    for text, says in (("MaxItems=3", "unknown option 'MaxItems'"), ("ContentFormat=Rendered", "ContentFormat must be"),
                       ("ConnectionRetry=5", "COUNTxSECONDS"), ("MaxTime=abc", "MaxTime: expected a number")):
        with pytest.raises(ValueError, match=says):
            parse_options(text)


def test_embedded_subscription_refusals_exit_2(tmp_path: Path) -> None:
    base = ["run", "--protocol", "wsman", "--target-eps", "10", "--duration-secs", "1",
            "--wef-endpoint", "http://127.0.0.1:9", "--results", str(tmp_path / "r.json")]
    done = wefperf(*base, "--embedded", "--embedded-subscription", "ContentFormat=Pretty", timeout=60)
    assert done.code == 2 and "ContentFormat must be Raw or RenderedText" in done.err, done.err
    done = wefperf(*base, "--embedded-subscription", "ContentFormat=RenderedText", timeout=60)
    assert done.code == 2 and "give it with --embedded" in done.err, done.err


@pytest.mark.slow
def test_a_rendered_text_run_stores_rendering_info_and_accounts_exactly(
    wef_target, s3_client, bucket: str, moto_endpoint: str, tmp_path: Path,
) -> None:
    """Hosts asked for RenderedText send each event with its RenderingInfo; the collector counts and
    stores every one (raw_xml with its RenderingInfo), and the S3 check still finds every marker."""
    t = wef_target("--wsman", "--flush-interval-secs", "0.5", "--content-format", "RenderedText")
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--protocol", "wsman", "--hosts", "20", "--target-eps", "200", "--duration-secs", "1.5",
        "--max-latency-secs", "0.3", "--verify-s3", "--s3-endpoint", moto_endpoint, "--s3-bucket", bucket,
        "--flush-interval-secs", "0.5", "--wef-endpoint", t.base, "--no-live", "--results", str(results),
        timeout=180,
    )
    assert done.code == 0, done.out + done.err
    assert "ContentFormat RenderedText" in done.out and "RenderingInfo" in done.out
    data = json.loads(results.read_text())
    sent, acc = data["results"]["events_sent"], data["s3_verification"]["accounting"]
    assert data["wsman"]["content_format"] == "RenderedText"
    assert sent > 0 and acc["expected"] == acc["found"] == sent and acc["missing"] == acc["duplicated"] == 0
    rows = read_rows(s3_client, bucket)
    assert len(rows) == sent
    raw = [json.loads(r["event_data"])["raw_xml"] for r in rows]
    assert all('<RenderingInfo Culture="en-US"><Message>' in x and "</RenderingInfo>" in x for x in raw)
