"""`wefperf collector` end to end: real sockets, a real child process, the real moto S3 server."""

from __future__ import annotations

import io
import json
import re
import signal
import time

import pyarrow.parquet as pq
import pytest
import requests

from test_collector_units import SECURITY, batch, event, raw_xml_of
from wefperf.collector.sink import SCHEMA
from wefperf.payload import build_pool, find_markers

KEY_RE = re.compile(
    r"^event_type=(\d+)/year=(\d{4})/month=(\d{2})/day=(\d{2})/events_(\d+)_(\d{8})_(\d{6})(?:_\d+)?\.parquet$"
)


def objects(s3_client, bucket: str) -> list[dict]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o for page in pages for o in page.get("Contents", [])]


def read_rows(s3_client, bucket: str) -> list[dict]:
    rows = []
    for obj in objects(s3_client, bucket):
        data = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        table = pq.read_table(io.BytesIO(data))
        assert table.schema == SCHEMA
        rows += [dict(r, _key=obj["Key"]) for r in table.to_pylist()]
    return rows


def wait_for(predicate, timeout: float = 15, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s")


def post(base: str, body: bytes, path: str = "/wsman/events", **headers: str) -> requests.Response:
    return requests.post(base + path, data=body, headers={"Content-Type": "application/soap+xml", **headers}, timeout=10)


def test_health_stats_shape_and_counting_rules(wef_target):
    t = wef_target()
    assert requests.get(t.base + "/health", timeout=5).text == "OK"
    assert requests.get(t.base + "/stats/throughput", timeout=5).json() == []
    # `<Event>x</Event>` has no EventID: v0.5.0 counts it as EventID 0 (never `unknown`)
    r = post(t.base, batch(event(), event(), event(), event("4625"), event("9", provider=""), "<Event>x</Event>"))
    assert (r.status_code, r.text) == (200, "OK")
    r = post(t.base, batch(event("4625")), path="/wsman")
    assert (r.status_code, r.text) == (200, "Events received")
    rows = requests.get(t.base + "/stats/throughput", timeout=5).json()
    assert [(row["event_type"], row["total_events"]) for row in rows] == [
        ("Microsoft-Windows-Security-Auditing:4624", 3),
        ("Microsoft-Windows-Security-Auditing:4625", 2),
        ("EventID 0", 1),
        ("EventID 9", 1),
    ]
    for row in rows:
        assert set(row) == {"event_type", "total_events", "last_minute", "last_five_minutes",
                            "average_per_second_last_minute"}
        assert row["last_minute"] == row["last_five_minutes"] == row["total_events"]
        assert row["average_per_second_last_minute"] == pytest.approx(row["last_minute"] / 60, abs=1e-3)


def test_not_an_events_batch_is_400_and_too_large_is_413(wef_target):
    t = wef_target("--max-body-mb", "0.01")
    for path in ("/wsman/events", "/wsman"):
        assert post(t.base, b"<Envelope><Body><Subscribe/></Body></Envelope>", path=path).status_code == 400
    assert post(t.base, b"<m:Events><m:Event></m:Event></m:Events>").status_code == 400
    big = batch(*[event()] * 40)
    assert len(big) > 0.01 * 1024 * 1024
    assert post(t.base, big).status_code == 413
    assert requests.get(t.base + "/stats/throughput", timeout=5).json() == []


def test_four_provider_styles_are_labelled_and_stored_as_the_real_collector_does(wef_target, s3_client, bucket):
    """docs/contract.md: the provider is the text of `<Provider>`; only unprefixed `<Event>` elements count."""
    t = wef_target("--flush-interval-secs", "1")
    seed = event(computer="STYLE-SEED")  # <Provider Name="X">X</Provider>, as the seed client wrote
    windows = event(computer="STYLE-WINDOWS", style="windows")  # <Provider Name="X" Guid="{..}"/>
    text = event(computer="STYLE-TEXT", style="text")  # <Provider>X</Provider>
    for body in (batch(seed), batch(windows), batch(text)):
        r = post(t.base, body)
        assert (r.status_code, r.text) == (200, "OK")
    # (4) prefixed events: in a plain <Events> the body is detected (200) but nothing is counted;
    # a namespaced <w:Events> root is not detected at all (400)
    prefixed = [event(computer="STYLE-PREFIXED", prefix="w:", style=s) for s in ("seed", "windows", "text")]
    assert post(t.base, batch(*prefixed)).status_code == 200
    wrapped = ("<w:Envelope><w:Body><w:Events>" + "".join(prefixed) + "</w:Events></w:Body></w:Envelope>").encode()
    assert post(t.base, wrapped).status_code == 400
    rows = requests.get(t.base + "/stats/throughput", timeout=5).json()
    assert {row["event_type"]: row["total_events"] for row in rows} == {f"{SECURITY}:4624": 2, "EventID 4624": 1}

    wait_for(lambda: requests.get(t.base + "/stats/collector", timeout=5).json()["uploaded_events"] == 3)
    stored = {}
    for row in read_rows(s3_client, bucket):
        data = json.loads(row["event_data"])
        assert row["event_id"] == data["parsed"]["event_id"] == 4624
        stored[data["parsed"]["computer"]] = (data["raw_xml"], data["parsed"]["provider"])
    assert stored == {
        "STYLE-SEED": (raw_xml_of(seed), SECURITY),
        "STYLE-WINDOWS": (raw_xml_of(windows), ""),
        "STYLE-TEXT": (raw_xml_of(text), SECURITY),
    }
    # raw_xml runs from the reader's position before `<Event` to just before `</Event>`
    assert all(raw.startswith("\n<Event ") and raw.endswith("</EventData>") for raw, _ in stored.values())


def test_partitions_keys_rows_and_flush_by_time(wef_target, s3_client, bucket):
    t = wef_target("--flush-interval-secs", "1")
    pool = build_pool(run_id="feedbeef0001", batch_size=200, variants=2)
    for b in range(3):
        assert post(t.base, pool.body(b)).status_code == 200
    assert post(t.base, batch(event("9", provider="")), path="/wsman", **{"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    # flushed by the timer while the collector keeps running
    wait_for(lambda: requests.get(t.base + "/stats/collector", timeout=5).json()["uploaded_events"] == 601)
    rows = read_rows(s3_client, bucket)
    assert len(rows) == 601
    # wefperf writes Windows' self-closing `<Provider Name=".." Guid=".."/>`, which has no text: the
    # collector labels its events by EventID alone, as v0.5.0 does
    expected = dict(pool.expected_types(3))  # by EventID
    for row in rows:
        m = KEY_RE.match(row["_key"])
        assert m, row["_key"]
        assert int(m.group(1)) == int(m.group(5)) == row["event_id"]
        assert m.group(6) == m.group(2) + m.group(3) + m.group(4)
    # expected_types counts by EventID (c95ed07); the provider each row was parsed with is checked apart
    by_id: dict[int, int] = {}
    for row in rows:
        by_id[row["event_id"]] = by_id.get(row["event_id"], 0) + 1
    assert by_id == {**expected, 9: 1}
    # wefperf's Windows-style self-closing <Provider/> gives an empty provider, as in logthing v0.5.0
    assert {json.loads(row["event_data"])["parsed"]["provider"] for row in rows} == {""}
    throughput = requests.get(t.base + "/stats/throughput", timeout=5).json()
    labels = {row["event_type"]: row["total_events"] for row in throughput}
    assert labels == {f"EventID {k}": v for k, v in by_id.items()}
    markers = {m.seq(200) for row in rows for m in find_markers(row["event_data"])}
    assert markers == set(range(600))
    hosts = {row["source_host"] for row in rows}
    assert hosts == {"127.0.0.1", "10.1.2.3"}
    assert len({row["_key"] for row in rows}) == len(objects(s3_client, bucket))


@pytest.mark.slow
def test_flush_by_size_respects_the_maximum(wef_target, s3_client, bucket):
    max_mb = 0.05
    t = wef_target("--flush-interval-secs", "60", "--max-file-size-mb", str(max_mb))
    pool = build_pool(run_id="feedbeef0002", batch_size=500, event_type="4624")
    assert post(t.base, pool.body(0)).status_code == 200
    # no timer flush within 60 s: the files come from the size rule alone
    wait_for(lambda: requests.get(t.base + "/stats/collector", timeout=5).json()["uploaded_events"] >= 400)
    files = objects(s3_client, bucket)
    assert len(files) >= 2
    assert all(f["Size"] <= max_mb * 1024 * 1024 for f in files)
    assert len({f["Key"] for f in files}) == len(files)
    code, err = t.stop()
    assert code == 0, err
    rows = read_rows(s3_client, bucket)
    assert sorted(m.index for r in rows for m in find_markers(r["event_data"])) == list(range(500))
    assert all(f["Size"] <= max_mb * 1024 * 1024 for f in objects(s3_client, bucket))


def test_size_rule_learns_compression_and_still_respects_the_maximum(wef_target, s3_client, bucket):
    """After the first file the sink seals on the compressed size it saw; files still never exceed the limit."""
    max_mb = 0.2
    t = wef_target("--flush-interval-secs", "60", "--max-file-size-mb", str(max_mb))
    pool = build_pool(run_id="feedbeef0004", batch_size=500, event_type="4624")
    for number in range(6):
        assert post(t.base, pool.body(number)).status_code == 200
        time.sleep(0.3)  # let a sealed buffer build, so the next seals use what it learned
    code, err = t.stop()
    assert code == 0, err
    files = objects(s3_client, bucket)
    assert all(f["Size"] <= max_mb * 1024 * 1024 for f in files)
    # raw XML alone is ~0.8 MB per batch here: sealing on the uncompressed estimate would need 20+ files
    assert len(files) < 20
    rows = read_rows(s3_client, bucket)
    seqs = sorted(m.seq(500) for r in rows for m in find_markers(r["event_data"]))
    assert seqs == list(range(3000))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_flushes_every_buffer(wef_target, s3_client, bucket, sig):
    t = wef_target("--flush-interval-secs", "600")
    pool = build_pool(run_id="feedbeef0003", batch_size=100)
    for b in range(4):
        assert post(t.base, pool.body(b)).status_code == 200
    assert objects(s3_client, bucket) == []
    code, err = t.stop(sig)
    assert code == 0, err
    assert "Traceback" not in err
    assert "received 400 events" in err and "dropped 0 events" in err
    rows = read_rows(s3_client, bucket)
    assert sorted(m.seq(100) for r in rows for m in find_markers(r["event_data"])) == list(range(400))
