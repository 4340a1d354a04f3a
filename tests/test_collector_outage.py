"""An S3 outage during a run: uploads are retried and nothing is lost, or the loss is counted."""

from __future__ import annotations

import pytest
import requests

from conftest import start_target
from test_collector_http import post, read_rows, wait_for
from wefperf.collector.s3server import MotoServer
from wefperf.payload import build_pool, find_markers


def s3(endpoint: str):
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def target_stats(base: str) -> dict:
    return requests.get(base + "/stats/collector", timeout=5).json()


@pytest.mark.slow
def test_uploads_are_retried_across_an_outage_and_nothing_is_lost():
    moto = MotoServer().start()
    port = moto.port
    s3(moto.endpoint).create_bucket(Bucket="outage")
    t = start_target("--s3-endpoint", moto.endpoint, "--bucket", "outage", "--flush-interval-secs", "0.5")
    try:
        pool = build_pool(run_id="0a7a6e000001", batch_size=100, event_type="4624")
        assert post(t.base, pool.body(0)).status_code == 200
        wait_for(lambda: target_stats(t.base)["uploaded_events"] == 100)

        moto.stop()  # S3 goes away mid-run
        assert post(t.base, pool.body(1)).status_code == 200
        assert post(t.base, pool.body(2)).status_code == 200
        wait_for(lambda: target_stats(t.base)["upload_retries"] >= 2)
        during = target_stats(t.base)
        assert during["uploaded_events"] == 100
        assert during["pending_upload_events"] + during["buffered_events"] == 200

        moto = MotoServer(port=port).start()  # back on the same address, empty
        client = s3(moto.endpoint)
        client.create_bucket(Bucket="outage")
        wait_for(lambda: target_stats(t.base)["uploaded_events"] == 300, timeout=20)
        after = target_stats(t.base)
        assert after["dropped_events"] == 0 and after["pending_upload_files"] == 0
        rows = read_rows(client, "outage")
        assert sorted(m.seq(100) for r in rows for m in find_markers(r["event_data"])) == list(range(100, 300))
        code, err = t.stop()
        assert code == 0, err
        assert "retrying" in err and "recovered" in err and "dropped 0 events" in err
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
        moto.stop()


@pytest.mark.slow
def test_events_dropped_at_the_bound_are_counted_and_reported():
    with MotoServer() as moto:
        s3(moto.endpoint).create_bucket(Bucket="bounded")
        t = start_target("--s3-endpoint", moto.endpoint, "--bucket", "bounded", "--flush-interval-secs", "0.2",
                         "--max-pending-mb", "0.000001", "--shutdown-timeout-secs", "1")
    # moto is gone now: nothing can be uploaded, and the queue holds (almost) nothing
    try:
        pool = build_pool(run_id="0a7a6e000002", batch_size=100)
        assert post(t.base, pool.body(0)).status_code == 200
        assert post(t.base, pool.body(1)).status_code == 200
        wait_for(lambda: target_stats(t.base)["dropped_events"] == 200)
        code, err = t.stop()
        assert code == 1
        assert "dropped 200 events" in err and "upload queue is full" in err
        assert "Traceback" not in err
    finally:
        if t.proc.poll() is None:
            t.proc.kill()


@pytest.mark.slow
def test_s3_still_down_at_shutdown_counts_what_could_not_be_written():
    with MotoServer() as moto:
        s3(moto.endpoint).create_bucket(Bucket="down")
        t = start_target("--s3-endpoint", moto.endpoint, "--bucket", "down", "--flush-interval-secs", "600",
                         "--shutdown-timeout-secs", "1")
    try:
        assert post(t.base, build_pool(run_id="0a7a6e000003", batch_size=150, event_type="4625").body(0)).status_code == 200
        code, err = t.stop()
        assert code == 1
        assert "received 150 events" in err and "dropped 150 events" in err
        assert "Traceback" not in err
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
