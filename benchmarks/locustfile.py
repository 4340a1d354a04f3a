"""Locust (FastHttpUser, one process) posting the same events batch body as wefperf and wrk.

benchmarks/run.py starts it headless with `-u` users, all spawned at once, against its
nginx sink; the body is read once from the file named by WEFPERF_BODY_FILE.
"""

from __future__ import annotations

import os

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

with open(os.environ["WEFPERF_BODY_FILE"], "rb") as f:
    BODY = f.read()
HEADERS = {"Content-Type": "application/soap+xml;charset=UTF-8"}


class EventsPoster(FastHttpUser):
    """Posts batches back to back: no think time, one keep-alive connection per user."""

    wait_time = constant(0)

    @task
    def post_batch(self) -> None:
        self.client.post("/wsman/events", data=BODY, headers=HEADERS)
