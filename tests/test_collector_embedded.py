"""`embedded_stack`: moto and the collector as child processes, torn down with a flush."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from wefperf.collector.embedded import embedded_stack
from wefperf.collector.upload import S3Target, s3_client
from wefperf.payload import build_pool


@pytest.mark.slow
async def test_embedded_stack_serves_and_writes_to_its_s3():
    pool = build_pool(run_id="e0bedded0001", batch_size=100, event_type="4624")
    async with embedded_stack(flush_interval_secs=0.5, bucket="embedded") as stack:
        assert stack.wef_endpoint.endswith("/wsman/events") and stack.bucket == "embedded"
        base = stack.wef_endpoint.removesuffix("/wsman/events")
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/health") as r:
                assert await r.text() == "OK"
            async with session.post(stack.wef_endpoint, data=pool.body(0)) as r:
                assert r.status == 200
        target = S3Target(stack.s3_endpoint, stack.bucket, stack.access_key, stack.secret_key)
        async with s3_client(target) as client:
            for _ in range(100):
                listed = await client.list_objects_v2(Bucket=stack.bucket)
                if listed.get("Contents"):
                    break
                await asyncio.sleep(0.1)
            assert [o["Key"].split("/")[0] for o in listed["Contents"]] == ["event_type=4624"]
    # both processes are gone: nothing answers any more
    async with aiohttp.ClientSession() as session:
        for url in (base + "/health", stack.s3_endpoint):
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)):
                    pass
