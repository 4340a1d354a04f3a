"""The collector's flush leaves its request loop free: files are built in pieces in a worker thread,
and nothing the size of a file is hashed on the loop when it is uploaded (issue 22, section 4)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from test_collector_units import batch, event, raw_xml_of
from wefperf.collector import sink as sink_module
from wefperf.collector.parse import parse_batch
from wefperf.collector.sink import ESCAPE_PIECE, Chunk, Sink, build_table
from wefperf.collector.upload import PendingFile, S3Target, Uploader, crc32_of, s3_client
from wefperf.payload import build_pool


class _MemoryStore:
    """Keeps what the uploader puts (the flush's policy under test, not S3)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes, **checksum: str) -> None:
        self.files[Key] = Body


def _chunks(body: bytes, received: str, host: str) -> list[Chunk]:
    return [Chunk(body, sl, received, host, None, sl.xml_bytes()) for sl in parse_batch(body).by_event_id.values()]


def test_a_partition_built_in_pieces_keeps_every_event_in_order_with_its_request() -> None:
    """More events than one piece in a chunk, several chunks with their own receive time and host,
    and a body that is not valid UTF-8: every row is its event's, in order."""
    many = [event(computer=f"WS-{i}") for i in range(ESCAPE_PIECE * 2 + 7)]
    first = batch(*many)
    odd = batch(event(computer="caf\xe9")).replace("caf\xe9".encode(), b"caf\xe9\xff")  # invalid UTF-8
    chunks = _chunks(first, "t1", "10.0.0.1") + _chunks(odd, "t2", "10.0.0.2")
    rows = build_table(chunks, 4624).to_pylist()
    assert len(rows) == len(many) + 1
    data = [json.loads(r["event_data"]) for r in rows]
    assert [d["raw_xml"] for d in data[:-1]] == [raw_xml_of(e) for e in many]
    assert [d["parsed"]["computer"] for d in data[:-1]] == [f"WS-{i}" for i in range(len(many))]
    assert data[-1]["raw_xml"] == raw_xml_of(event(computer="caf\ufffd\ufffd"))  # replaced, not lost
    assert [(r["timestamp"], r["source_host"]) for r in rows] == [("t1", "10.0.0.1")] * len(many) + [("t2", "10.0.0.2")]
    assert {r["event_id"] for r in rows} == {4624} and {r["subscription_id"] for r in rows} == {None}


async def test_a_flush_escapes_events_in_pieces_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls that hold the GIL (orjson) each take one piece, never the whole partition, and
    none of the flush's work (escaping, encoding, checksum) runs on the loop's thread."""
    calls: list[tuple[bool, int]] = []
    real_dumps = sink_module.orjson.dumps
    real_crc = sink_module.crc32_of

    class SpyOrjson:
        @staticmethod
        def dumps(obj: Any) -> bytes:
            calls.append((threading.current_thread() is threading.main_thread(), len(obj)))
            return real_dumps(obj)

    crc_threads: list[bool] = []

    def spy_crc(data: bytes) -> str:
        crc_threads.append(threading.current_thread() is threading.main_thread())
        return real_crc(data)

    monkeypatch.setattr(sink_module, "orjson", SpyOrjson)
    monkeypatch.setattr(sink_module, "crc32_of", spy_crc)
    store = _MemoryStore()
    uploader = Uploader(store, "b", max_pending_bytes=1 << 30)
    uploader.start()
    sink = Sink(uploader, flush_interval=3600, max_file_bytes=1 << 30)
    body = build_pool(run_id="pieces1", batch_size=3 * ESCAPE_PIECE, event_type="4624").body(0)
    parsed = parse_batch(body)
    sink.add(parsed.by_event_id, body, "127.0.0.1")
    await sink.close()
    await uploader.close(10)
    assert calls and not any(on_loop for on_loop, _ in calls)
    assert max(n for _, n in calls) <= ESCAPE_PIECE
    assert sum(n for _, n in calls) == 3 * ESCAPE_PIECE
    assert crc_threads == [False]
    assert uploader.counters.uploaded_events == 3 * ESCAPE_PIECE and len(store.files) == 1


@pytest.mark.slow
async def test_the_loop_stays_responsive_while_a_big_buffer_is_flushed() -> None:
    """A 1 ms timer on the loop, ticking while 30,000 events (about 50 MB of XML) become a file.
    Before the fix one call escaped the whole partition with the GIL held, and the loop stood still
    for a sizeable share of the build (6-26 % of it on a 2-core machine, quiet or busy). The
    bound is a tenth of the build time: the build slows down with the machine's load, and so does
    any stall; pieces keep each hold near a millisecond, far under it, even with busy cores."""
    pool = build_pool(run_id="stall1", batch_size=1000, event_type="4624")
    uploader = Uploader(_MemoryStore(), "b", max_pending_bytes=1 << 30)
    uploader.start()
    sink = Sink(uploader, flush_interval=3600, max_file_bytes=1 << 30)
    for i in range(30):
        body = pool.body(i)
        sink.add(parse_batch(body).by_event_id, body, "127.0.0.1")
    stalls: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - t - 0.001)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    stalls.clear()
    started = time.perf_counter()
    await sink.close()
    build = time.perf_counter() - started
    done.set()
    await ticker
    await uploader.close(10)
    assert uploader.counters.uploaded_events == 30_000
    assert len(stalls) > 10
    assert max(stalls) < build / 10, f"the loop stood still {max(stalls) * 1000:.0f} ms of a {build:.2f} s build"


async def test_an_upload_sends_the_body_crc32_and_hashes_nothing_on_the_loop(
        moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore would CRC32 every body and, over http, SHA-256 it for the signature, on the loop.
    The CRC32 comes from the build's thread instead, and S3 keeps it with the object."""
    import botocore.auth
    import botocore.httpchecksum

    data = bytes(range(256)) * 8192  # 2 MiB
    signed: list[str] = []  # what the signature says of the body: its SHA-256, or UNSIGNED-PAYLOAD
    checksummed: list[int] = []  # bytes botocore CRC32s itself
    real_payload = botocore.auth.SigV4Auth.payload
    real_update = botocore.httpchecksum.Crc32Checksum.update

    def spy_payload(self: Any, request: Any) -> str:
        value: str = real_payload(self, request)
        signed.append(value)
        return value

    def spy_update(self: Any, chunk: bytes) -> None:
        checksummed.append(len(chunk))
        real_update(self, chunk)

    monkeypatch.setattr(botocore.auth.SigV4Auth, "payload", spy_payload)
    monkeypatch.setattr(botocore.httpchecksum.Crc32Checksum, "update", spy_update)
    async with s3_client(S3Target(moto_endpoint, bucket, "testing", "testing")) as client:
        uploader = Uploader(client, bucket, max_pending_bytes=1 << 30)
        uploader.start()
        uploader.submit(PendingFile("k.parquet", data, 5, crc32_of(data)))
        await uploader.close(30)
        put_signed, put_checksummed = list(signed), sum(checksummed)  # not the read below
        assert uploader.counters.uploaded_events == 5
        got = await client.get_object(Bucket=bucket, Key="k.parquet", ChecksumMode="ENABLED")
        assert await got["Body"].read() == data
    assert got["ChecksumCRC32"] == crc32_of(data)
    assert put_signed == [botocore.auth.UNSIGNED_PAYLOAD] and put_checksummed == 0
